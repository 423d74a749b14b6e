"""Progress bars for long work (``replay``, ``simulate``, ``evaluate``, ``bench``, the native build):
tqdm on stderr, shown only when stderr is a terminal, so logs and pipes get no escape codes."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


def bar(total: float | None, desc: str, unit: str = "it", enabled: bool = True, **options: Any) -> tqdm:
    """A bar of ``total`` ``unit`` (None: a counter); silent unless ``enabled`` and stderr is a terminal."""
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not (enabled and sys.stderr.isatty()),
                dynamic_ncols=True, leave=False, **options)


def colour_ok(stream: Any = sys.stdout) -> bool:
    """Whether ``stream`` is a terminal (colour and escape codes only then)."""
    return bool(getattr(stream, "isatty", lambda: False)())
