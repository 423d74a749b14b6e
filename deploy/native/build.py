"""Compile the hot modules with mypyc: ``make native`` runs this (see ``detectors/native.py``).

The build goes to ``.cache/mypyc/new``; the manifest (source hashes taken *before* compiling, and
checked again after) is written last, and only then does the result replace ``.cache/mypyc/lib``.
A build that fails leaves no compiled modules at all, so the package runs from source; the exit
status says so (``--allow-failure`` turns that into a warning, for ``make run``/``demo``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".cache" / "mypyc"


def _native_module():
    """detectors/native.py by path: importing the package would activate (and import) the engine."""
    spec = importlib.util.spec_from_file_location("_privwatch_native", ROOT / "detectors" / "native.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(native, opt_level: str) -> None:
    from mypyc.build import mypycify
    from setuptools import setup

    before = native.manifest_for()
    new = WORK / "new"
    shutil.rmtree(new, ignore_errors=True)
    os.chdir(ROOT)  # mypyc names modules after paths relative to the working directory
    extensions = mypycify(
        ["--config-file", "deploy/native/mypy.ini", *(f"{path}.py" for path in native.COMPILED)],
        opt_level=opt_level,
        debug_level="0",
        group_name="detectors._native",  # the shared library lives inside the package: detectors/_native__mypyc
        target_dir=str(WORK / "c"),
    )
    WORK.mkdir(parents=True, exist_ok=True)
    os.chdir(WORK)  # not the project root: setuptools would read (and validate) pyproject.toml there
    setup(
        name="privwatch-native",
        ext_modules=extensions,
        script_args=["-q", "build_ext", "--build-lib", str(new), "--build-temp", str(WORK / "obj")],
    )
    if native.manifest_for() != before:
        raise RuntimeError("sources changed during the build; run it again")
    (new / native.MANIFEST).write_text(json.dumps(before, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(native.LIB_DIR, ignore_errors=True)
    new.rename(native.LIB_DIR)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="deploy/native/build.py", description=__doc__.split("\n")[0])
    p.add_argument("--opt-level", default="3", help="C optimisation level passed to mypyc (default 3)")
    p.add_argument("--allow-failure", action="store_true", help="warn and exit 0 when the build fails")
    args = p.parse_args(argv)
    native = _native_module()
    if os.environ.get(native.PURE_ENV, "") not in ("", "0"):
        print(f"native: {native.PURE_ENV} set, not compiling", file=sys.stderr)
        return 0
    if native.check() is None:
        (native.LIB_DIR / native.MANIFEST).touch()  # newer than the sources again, for make
        print("native: compiled modules are up to date", file=sys.stderr)
        return 0
    started = time.monotonic()
    try:
        build(native, args.opt_level)
    except (Exception, SystemExit) as exc:  # setuptools reports a compiler failure as SystemExit
        shutil.rmtree(native.LIB_DIR, ignore_errors=True)  # never leave a build that does not match
        print(f"native: mypyc build FAILED ({exc}); everything runs as pure Python", file=sys.stderr)
        return 0 if args.allow_failure else 1
    print(f"native: compiled {len(native.COMPILED)} modules in {time.monotonic() - started:.0f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
