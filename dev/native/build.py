"""Compile the hot modules with mypyc: ``make native`` runs this (see ``detectors/native.py``).

The build goes to ``.cache/mypyc/new``; the manifest (source hashes taken *before* compiling, and
checked again after) is written last, and only then does the result replace ``.cache/mypyc/lib``.
A build that fails leaves no compiled modules at all, so the package runs from source; the exit
status says so (``--allow-failure`` turns that into a warning, for ``make run``/``demo``).

On Linux the build is profile-guided, as CPython's own release builds are: a first build counts
where its code goes while ``dev/native/train.py`` runs simulated events through the service loop,
and gcc lays out and inlines the final build from those counts. Measured on the bench's stream:
callgrind counts 2.8% fewer instructions per event through the service loop with :data:`FLAGS`,
4.1% with them and the profile; ``python -m stream.bench.loop`` (fastest of 6 alternating runs of
120k events) 12.27 us per event plain, 11.99 profile-guided. ``--no-profile`` builds in one pass
(about 45 s instead of 95); so does a training run that fails, with a warning.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".cache" / "mypyc"
OBJ = WORK / "obj"

#: Beside Python's own (-O3): calls between the library's functions are direct, so gcc may inline
#: them (no symbol interposition, and only the modules' init functions exported: the compiled modules
#: reach each other through capsules, never by symbol), and calls into libpython go through the GOT
#: instead of the PLT. Measured with callgrind over the bench's stream: 2.8% fewer instructions per
#: event through the service loop, outputs identical.
FLAGS: Final = ("-fno-semantic-interposition", "-fvisibility=hidden", "-fno-plt")
#: the training build's counters are updated atomically: the service loop has threads
PROFILE_GENERATE: Final = ("-fprofile-generate", "-fprofile-update=atomic")
#: code the training never ran (error paths, rare detectors' branches) has no counts, and is fine so
PROFILE_USE: Final = ("-fprofile-use", "-fprofile-correction", "-Wno-missing-profile")


def _native_module():
    """detectors/native.py by path: importing the package would activate (and import) the engine."""
    spec = importlib.util.spec_from_file_location("_privwatch_native", ROOT / "detectors" / "native.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def quiet(step: str) -> Iterator[None]:
    """Announce ``step`` and keep the compilers' chatter (mypyc notes, gcc warnings) out of the terminal:
    it goes to a log file, shown only when the step fails."""
    print(f"native: {step}", file=sys.stderr, flush=True)
    WORK.mkdir(parents=True, exist_ok=True)
    log = WORK / "build.log"
    saved = [os.dup(1), os.dup(2)]
    sys.stdout.flush()
    sys.stderr.flush()
    with open(log, "wb") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        except BaseException:
            _restore(saved)
            sys.stderr.write(log.read_text(errors="replace")[-4000:])
            raise
        finally:
            _restore(saved)


def _restore(saved: list[int]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    for fd, copy in ((1, saved[0]), (2, saved[1])):
        os.dup2(copy, fd)


def build(native, opt_level: str, cflags: Sequence[str] = FLAGS, ldflags: Sequence[str] = ()) -> None:
    from mypyc.build import mypycify
    from setuptools import setup

    before = native.manifest_for()
    new = WORK / "new"
    shutil.rmtree(new, ignore_errors=True)
    for package in {path.rpartition("/")[0] for path in native.COMPILED}:
        # made here: setuptools makes each directory once per process, and a second build (the
        # profile-guided one) would find them gone
        (new / package).mkdir(parents=True)
    os.chdir(ROOT)  # mypyc names modules after paths relative to the working directory
    extensions = mypycify(
        ["--config-file", "dev/native/mypy.ini", *(f"{path}.py" for path in native.COMPILED)],
        opt_level=opt_level,
        debug_level="0",
        group_name="detectors._native",  # the shared library lives inside the package: detectors/_native__mypyc
        target_dir=str(WORK / "c"),
    )
    for ext in extensions:
        ext.extra_compile_args = [*ext.extra_compile_args, *cflags]
        ext.extra_link_args = [*ext.extra_link_args, *ldflags]
    WORK.mkdir(parents=True, exist_ok=True)
    os.chdir(WORK)  # not the project root: setuptools would read (and validate) pyproject.toml there
    setup(
        name="privwatch-native",
        ext_modules=extensions,
        script_args=["-q", "build_ext", "--build-lib", str(new), "--build-temp", str(OBJ)],
    )
    if native.manifest_for() != before:
        raise RuntimeError("sources changed during the build; run it again")
    built = {**before, "cflags": list(cflags)}  # how it was built (tests check it is profile-guided)
    (new / native.MANIFEST).write_text(json.dumps(built, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(native.LIB_DIR, ignore_errors=True)
    new.rename(native.LIB_DIR)


def build_with_profile(native, opt_level: str) -> None:
    """Build instrumented, train (``dev/native/train.py``), then build from the counts gathered."""
    shutil.rmtree(OBJ, ignore_errors=True)  # no counts from an older build
    with quiet("step 1 of 3: instrumented build (about 35 s)"):
        build(native, opt_level, (*FLAGS, *PROFILE_GENERATE), ("-fprofile-generate",))
    started = time.monotonic()
    print("native: step 2 of 3: training on simulated events (a few seconds)", file=sys.stderr, flush=True)
    trained = subprocess.run([sys.executable, str(Path(__file__).with_name("train.py"))], cwd=ROOT).returncode == 0
    for obj in OBJ.rglob("*.o"):  # compile again, now with the counts (kept beside the objects)
        obj.unlink()
    if not trained:
        print("native: the training run failed; building without a profile", file=sys.stderr)
        for counts in OBJ.rglob("*.gcda"):  # not the directories: setuptools makes each once per process
            counts.unlink()
        with quiet("step 3 of 3: plain build"):
            build(native, opt_level)
        return
    print(f"native: trained in {time.monotonic() - started:.0f} s", file=sys.stderr)
    with quiet("step 3 of 3: profile-guided build (about 40 s)"):
        build(native, opt_level, (*FLAGS, *PROFILE_USE))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dev/native/build.py", description=__doc__.split("\n")[0])
    p.add_argument("--opt-level", default="3", help="C optimisation level passed to mypyc (default 3)")
    p.add_argument("--no-profile", action="store_true", help="one plain build, no profile-guided optimisation")
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
        if args.no_profile or not sys.platform.startswith("linux"):
            with quiet(f"compiling {len(native.COMPILED)} modules (about 45 s)"):
                build(native, args.opt_level)
        else:
            build_with_profile(native, args.opt_level)
    except (Exception, SystemExit) as exc:  # setuptools reports a compiler failure as SystemExit
        shutil.rmtree(native.LIB_DIR, ignore_errors=True)  # never leave a build that does not match
        print(f"native: mypyc build FAILED ({exc}); everything runs as pure Python", file=sys.stderr)
        return 0 if args.allow_failure else 1
    print(f"native: compiled {len(native.COMPILED)} modules in {time.monotonic() - started:.0f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
