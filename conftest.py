"""Session-wide test guard: the tests run against the compiled modules, as shipped (detectors/native.py).

A missing, failed or stale mypyc build stops the run here instead of silently testing the source;
``PRIVWATCH_PURE=1`` tests the pure-Python fallback on purpose. The compiled modules' own files are
left out of ``--doctest-modules`` (pytest would import the compiled module for a ``.py`` path, and
compiled code carries no docstrings); tests/test_native.py runs their examples from the source.
"""

from __future__ import annotations

import pytest

from detectors import native

collect_ignore = [f"{path}.py" for path in native.COMPILED] if native.status == "compiled" else []


def pytest_configure(config: pytest.Config) -> None:
    if native.status != "compiled" and not native.status.startswith(f"pure ({native.PURE_ENV}"):
        raise pytest.UsageError(
            f"compiled modules unavailable: {native.status}. Run `make native` (make test does), "
            f"or set {native.PURE_ENV}=1 to test the pure-Python build."
        )
