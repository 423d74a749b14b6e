"""The compiled (mypyc) build of the hot modules, and the guard that keeps it honest.

``make native`` (``dev/native/build.py``) compiles :data:`COMPILED` (the detectors, and the
service's per-record decoding, merging and dispatching in ``stream``) with mypyc into
``.cache/mypyc/lib/``, outside the source tree, and writes a manifest there last: the SHA-256 of
every compiled ``.py`` as it was built, and the interpreter's extension suffix. :func:`activate`, called by
``detectors/__init__.py`` and ``stream/__init__.py`` before any other submodule is imported, puts
that package's directory of the build first on the package's ``__path__`` only when every hash
still matches the ``.py`` it was built from; otherwise the packages run from source. Compiled code
is therefore never older than its source, whatever the file times say (a checkout, an edit, a copied
tree), and nothing compiled sits next to a ``.py`` to shadow it. One manifest covers both packages:
they share one compiled library, so either both run compiled or neither does.

``PRIVWATCH_PURE=1`` runs from source on purpose. The test suite refuses to run on a stale or
missing build unless that is set (``conftest.py``): the tests exercise what ships.

What compiling asks of the sources (mypyc 2.x):

- Classes whose constructor needs arguments carry ``@mypyc_attr(serializable=True,
  allow_interpreted_subclasses=True)``: pickle and ``copy`` then recreate them without calling
  ``__init__``, and plain-Python subclasses (tests) are allowed. Both flags together: ``serializable``
  alone stops a call from Python from running ``__init__`` at all. :class:`~detectors.base.Detector`
  has ``allow_interpreted_subclasses`` only; detectors take only defaulted arguments, so mypyc
  unpickles them by calling ``__init__()`` and then setting the state.
- Small ``__slots__`` classes pickle their state as a dict of named attributes
  (:func:`~detectors.compact.slot_state`), which both builds read, as well as plain Python's default
  form: a snapshot written by either build, or by an earlier version, restores into either.
- Module-level constants and caches that the hot path reads are ``Final``: compiled, a ``Final``
  name is a C static, where any other module-level name is looked up in the module's dictionary at
  every use (about 130 instructions).
- Class-level constants are ``ClassVar`` or ``Final``; constructor defaults are literals or
  ``Final`` names (the compiled class's signature, which ``clone()`` reads, must render them).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import sysconfig
import warnings
from pathlib import Path
from typing import Any

#: modules compiled by mypyc, as paths from the project root without ``.py`` (measured: each carries
#: per-event work; registry, native and the ``__init__`` modules run once and stay Python)
COMPILED = (
    *(f"detectors/{name}" for name in (
        "admins", "alerts", "base", "calibrate", "compact", "context", "days", "denied", "dormancy", "drift", "engine",
        "events", "export_mix", "export_window", "feedback", "multivariate", "novelty", "peers", "privilege",
        "service_misuse", "shift", "slow_exfiltration", "stats", "subjects", "volume")),
    "stream/contract/decode", "stream/service/dispatch", "stream/service/merge",
)
#: the directory holding the ``detectors`` and ``stream`` packages
ROOT = Path(__file__).resolve().parent.parent
#: where the build puts the compiled packages, one directory each (git-ignored; removed by ``make clean``)
LIB_DIR = ROOT / ".cache" / "mypyc" / "lib"
MANIFEST = "manifest.json"
PURE_ENV = "PRIVWATCH_PURE"

#: what :func:`activate` decided: "compiled", "pure (...why...)"
status = "pure (not activated)"


def source_hashes(root: Path = ROOT) -> dict[str, str]:
    """SHA-256 of each compiled module's source, by path (``detectors/engine``)."""
    return {path: hashlib.sha256((root / f"{path}.py").read_bytes()).hexdigest() for path in COMPILED}


def manifest_for(root: Path = ROOT) -> dict[str, Any]:
    """What a build of the sources under ``root`` records (and what :func:`check` expects to find)."""
    return {"ext_suffix": sysconfig.get_config_var("EXT_SUFFIX"), "modules": source_hashes(root)}


def check(lib_dir: Path = LIB_DIR, root: Path = ROOT) -> str | None:
    """None when ``lib_dir`` holds a build of exactly the current sources, else why not."""
    try:
        built = json.loads((lib_dir / MANIFEST).read_text())
    except FileNotFoundError:
        return "not built (make native)"
    except (OSError, ValueError) as exc:
        return f"unreadable manifest: {exc}"
    want = manifest_for(root)
    if built.get("ext_suffix") != want["ext_suffix"]:
        return f"built for {built.get('ext_suffix')}, this interpreter loads {want['ext_suffix']}"
    modules = built.get("modules", {})
    stale = sorted(name for name, digest in want["modules"].items() if modules.get(name) != digest)
    if stale:
        return f"stale: {', '.join(stale)} changed since the build (make native)"
    return None


def activate(package_path: list[str], package: str = "detectors", lib_dir: Path = LIB_DIR,
             root: Path = ROOT) -> str:
    """Put ``package``'s compiled modules first on its ``package_path`` when the build matches the
    sources; return the status. ``package`` is dotted for a subpackage (``stream.service``): each
    package holding compiled modules activates itself."""
    global status
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        status = f"pure ({PURE_ENV} set)"
    elif (why := check(lib_dir, root)) is not None:
        status = f"pure ({why})"
        if not why.startswith("not built"):  # a build that no longer matches: say so, never load it
            warnings.warn(f"privwatch: compiled {package} not used: {why}", RuntimeWarning, stacklevel=2)
    else:
        package_path.insert(0, str(lib_dir.joinpath(*package.split("."))))
        status = "compiled"
    return status


def is_compiled(module_name: str = "detectors.engine") -> bool:
    """Whether a loaded module runs compiled code (its file is an extension module)."""
    module = sys.modules.get(module_name)
    path = str(getattr(module, "__file__", "") or "")
    return path.endswith(sysconfig.get_config_var("EXT_SUFFIX"))
