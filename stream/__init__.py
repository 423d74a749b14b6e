"""privwatch's I/O side: Kafka, schemas, the service loop, state, metrics and the CLI."""

__version__ = "0.1.0"
