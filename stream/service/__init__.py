"""``privwatch run``: the service, its loop, partition ownership and the commit order.

The per-record merging and dispatching run compiled with the detectors when a matching build
exists (:mod:`detectors.native`)."""

from detectors import native

native.activate(__path__, __name__)
