"""What operators see and tune of the process: Prometheus metrics, the health endpoint, and the
garbage-collector and allocator settings of the loop."""
