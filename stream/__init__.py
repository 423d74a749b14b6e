"""privwatch's I/O side, organised by role (``docs/architecture.md`` draws it):

- :mod:`stream.contract`: the public contract (JSON Schemas, examples, pydantic models) and decoding;
- :mod:`stream.service`: ``privwatch run``, its loop, partition ownership and the commit order;
- :mod:`stream.kafka`: kafka-python clients, topics, dead letters;
- :mod:`stream.state`: per-partition detector state, its snapshots and the state topic;
- :mod:`stream.ops`: metrics, health endpoint, memory and garbage-collector tuning;
- :mod:`stream.alertmanager` and :mod:`stream.feedback`: paging out, analyst verdicts in;
- tools, each registering its own subcommand: :mod:`stream.replay`, :mod:`stream.simulate`,
  :mod:`stream.evaluate`, :mod:`stream.bench`, :mod:`stream.demo`;
- :mod:`stream.testing`: the in-memory harness tests, the bench and the native build's training share.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("privwatch")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
