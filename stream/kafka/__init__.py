"""Kafka I/O: kafka-python clients built from the settings, topics and dead-letter records.
kafka-python types stay in ``stream/``; nothing in ``detectors/`` sees them."""
