"""privwatch's I/O side: Kafka, schemas, the service loop, state, metrics and the CLI.

The per-record decoding, merging and dispatching run compiled by mypyc, with the detectors, when a
build matching their sources exists (:mod:`detectors.native`).
"""

from detectors import native

__version__ = "0.1.0"

native.activate(__path__, "stream")
