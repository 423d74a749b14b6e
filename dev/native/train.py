"""The workload the compiled build is profiled on (``dev/native/build.py``'s profile-guided build).

Runs :data:`EVENTS` events of a simulated organisation through the real service loop in memory
(:mod:`stream.testing`: decoding, merging, dispatching, every detector), with the instrumented
build, whose counters gcc then uses to lay out and inline the final build for the paths the service
takes. The seed is not the bench's (7): the build is not trained on the stream it is measured on.
Run by the build as ``python dev/native/train.py`` from the project root.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Final

#: events, principals and seed of the training stream (about 3 s with the instrumented build)
EVENTS: Final = 40_000
PRINCIPALS: Final = 500
SEED: Final = 1


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import orjson

    import detectors.native as native
    from stream.simulate import recent_history
    from stream.testing import in_memory

    if native.status != "compiled":
        print(f"native: training needs the instrumented build, found {native.status}", file=sys.stderr)
        return 1
    lines = [orjson.dumps(doc) for doc in recent_history(EVENTS, PRINCIPALS, SEED)]
    service, harness = in_memory(lines, partitions=3)
    harness.run(service)
    if service.handled_total != EVENTS:
        print(f"native: training handled {service.handled_total} of {EVENTS} events", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
