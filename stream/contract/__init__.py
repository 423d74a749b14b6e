"""The public contract: JSON Schemas of every document privwatch reads or writes (``*.schema.json``,
with examples in ``examples/``), the pydantic models that validate them (:mod:`.models`, kept in
step with the schemas by ``tests/test_schemas.py``) and the decoding of raw records into
:class:`~detectors.events.Event` (:mod:`.decode`, compiled). ``CHANGES.md`` records how it evolves."""

from pathlib import Path

from detectors import native

native.activate(__path__, __name__)

#: the directory holding the JSON Schemas and ``examples/`` (shipped as package data)
SCHEMA_DIR = Path(__file__).resolve().parent
