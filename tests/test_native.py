"""The mypyc-compiled modules (detectors/native.py): used by default, never stale, and the same
engine as the source in every way the service relies on: snapshots (pickle) in both directions
between compiled and pure processes, ``copy.deepcopy``, ``clone()``, plain-Python subclasses, and
the docstring examples of the compiled modules (run from their source)."""

from __future__ import annotations

import ast
import copy
import doctest
import importlib.util
import inspect
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from detector_streams import HOUR, access, last_of, routine

from detectors import native
from detectors.engine import Engine, EngineConfig
from detectors.registry import REGISTRY

TESTS = Path(__file__).resolve().parent
PURE = os.environ.get(native.PURE_ENV, "") not in ("", "0")


@pytest.mark.skipif(PURE, reason=f"{native.PURE_ENV} set")
def test_compiled_modules_are_the_ones_loaded() -> None:
    assert native.status == "compiled"
    assert {path.split("/")[0] for path in native.COMPILED} == {"detectors", "stream"}
    for path in native.COMPILED:
        module = path.replace("/", ".")
        __import__(module)
        assert native.is_compiled(module), module


def test_importing_the_packages_loads_no_engine() -> None:
    """Both packages' ``__init__`` activate the build and stop there: a process that only produces
    (the bench's load generator) does not load the engine and numpy; the re-exports load on use."""
    code = ("import sys, stream.bench.latency; "
            "print(sorted(m for m in ('numpy', 'detectors.engine') if m in sys.modules)); "
            "from detectors import Engine, EngineConfig, Event; import detectors.engine, detectors.events; "
            "print(Engine is detectors.engine.Engine, EngineConfig is detectors.engine.EngineConfig, "
            "Event is detectors.events.Event)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=TESTS.parent, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["[]", "True True True"]


def test_a_build_of_other_sources_is_never_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(native.PURE_ENV, raising=False)
    monkeypatch.setattr(native, "status", native.status)  # activate() below sets it; restored afterwards
    source = tmp_path / "src"
    for package in ("detectors", "stream"):
        shutil.copytree(native.ROOT / package, source / package)
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / native.MANIFEST).write_text(json.dumps(native.manifest_for(source)))
    assert native.check(lib, source) is None
    path: list[str] = []
    assert native.activate(path, "stream.service", lib, source) == "compiled"
    assert path == [str(lib / "stream" / "service")]
    # any package's edit stops them all: one shared library
    for edited in ("detectors/volume", "stream/contract/decode"):
        module = source / f"{edited}.py"
        module.write_text(module.read_text() + "\n# edited after the build\n")
        assert native.check(lib, source) == f"stale: {edited} changed since the build (make native)"
        for package in ("detectors", "stream.contract", "stream.service"):
            path = []
            with pytest.warns(RuntimeWarning, match=f"compiled {package} not used: stale: {edited}"):
                assert native.activate(path, package, lib, source).startswith("pure (stale")
            assert path == []  # the stale build is not on the package path
        (lib / native.MANIFEST).write_text(json.dumps(native.manifest_for(source)))
    (lib / native.MANIFEST).write_text(json.dumps({**native.manifest_for(source), "ext_suffix": ".other.so"}))
    assert "built for .other.so" in (native.check(lib, source) or "")
    assert native.check(tmp_path / "missing", source) == "not built (make native)"


def _init_params(cls: type) -> list[str]:
    """A detector's constructor arguments as its source spells them."""
    tree = ast.parse((native.ROOT / f"{cls.__module__.replace('.', '/')}.py").read_text())
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    init = next(n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    return [a.arg for a in init.args.args[1:]]


@pytest.mark.parametrize("name", list(REGISTRY))
def test_constructor_signature_survives_compilation(name: str) -> None:
    """clone() and repr() read the class signature; a compiled class must still carry all of it."""
    cls = REGISTRY[name]
    assert list(inspect.signature(cls).parameters) == _init_params(cls)
    tuned = cls(**{p: getattr(cls(), p) for p in _init_params(cls)})
    assert repr(tuned.clone()) == repr(tuned)


def _stream() -> tuple[list, int]:
    """Six days of routine, then an agent exporting in bulk from a new place: (events, where to cut)."""
    events = routine(days=6)
    agent = last_of(events, "su-000")
    late = max(e.ts for e in events) + HOUR
    events += [access(agent, f"x{i}", late + i * 30, action="export", records=50_000 + i, device_id="new",
                      user_agent="curl/8", country="RO") for i in range(20)]
    return events, len(events) * 2 // 3


def _warm_engine() -> tuple[Engine, list]:
    events, cut = _stream()
    engine = Engine(EngineConfig())
    for event in events[:cut]:
        engine.process(event)
    return engine, events[cut:]


def test_pickle_and_deepcopy_of_a_warm_engine_carry_on_identically() -> None:
    engine, tail = _warm_engine()
    copies = [pickle.loads(pickle.dumps(engine, protocol=pickle.HIGHEST_PROTOCOL)), copy.deepcopy(engine)]
    want = [a for e in tail for a in engine.process(e)]
    assert want  # the tail raises alerts, so the comparison means something
    for other in copies:
        assert type(other) is Engine and [a for e in tail for a in other.process(e)] == want
        assert {k: c.n_ for k, c in other.calibrators.items()} == {k: c.n_ for k, c in engine.calibrators.items()}
        assert other.n_principals() == engine.n_principals()


_CHILD = """
import pickle, sys
sys.path.insert(0, {tests!r})
from detectors import native
from test_native import _stream
import orjson
events, cut = _stream()
mode, path = sys.argv[1], sys.argv[2]
if mode == "write":
    from detectors.engine import Engine, EngineConfig
    engine = Engine(EngineConfig())
    for e in events[:cut]:
        engine.process(e)
    open(path, "wb").write(pickle.dumps(engine, protocol=pickle.HIGHEST_PROTOCOL))
else:
    engine = pickle.loads(open(path, "rb").read())
alerts = [a for e in events[cut:] for a in engine.process(e)]
print(orjson.dumps({{"status": native.status, "alerts": alerts}}).decode())
"""


def _child(mode: str, path: Path, pure: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != native.PURE_ENV}
    if pure:
        env[native.PURE_ENV] = "1"
    code = _CHILD.format(tests=str(TESTS))
    out = subprocess.run([sys.executable, "-c", code, mode, str(path)], env=env, capture_output=True, text=True,
                         cwd=TESTS.parent, timeout=240)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.skipif(PURE, reason="needs the compiled build")
@pytest.mark.parametrize("writer_pure", [True, False], ids=["pure-to-compiled", "compiled-to-pure"])
def test_snapshots_cross_between_pure_and_compiled(tmp_path: Path, writer_pure: bool) -> None:
    """A deployment can switch builds (upgrade, PRIVWATCH_PURE) and restore the other's snapshots."""
    path = tmp_path / "engine.pickle"
    written = _child("write", path, pure=writer_pure)
    restored = _child("read", path, pure=not writer_pure)
    assert written["status"].startswith("pure") == writer_pure
    assert restored["status"].startswith("pure") != writer_pure
    assert written["alerts"] and restored["alerts"] == written["alerts"]


def _source_module(path: str):
    """A compiled module's source, loaded under a private name (its docstrings are the examples)."""
    name = path.replace("/", "_")
    spec = importlib.util.spec_from_file_location(f"_source_of_{name}", native.ROOT / f"{path}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


@pytest.mark.skipif(PURE, reason="pytest collects the doctests of the sources itself")
@pytest.mark.parametrize("path", native.COMPILED)
def test_docstring_examples_of_compiled_modules(path: str) -> None:
    """Compiled modules carry no docstrings, so ``--doctest-modules`` skips them (conftest.py): run
    their examples here, from the source."""
    module = _source_module(path)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in doctest.DocTestFinder().find(module, module.__name__):
        runner.run(test)
    assert runner.failures == 0


@pytest.mark.skipif(PURE or not sys.platform.startswith("linux"), reason="compiled, profile-guided on Linux")
def test_the_build_is_profile_guided() -> None:
    """``make native`` trains an instrumented build (dev/native/train.py) and compiles from its
    counts; a training run that fails falls back to a plain build, which this catches."""
    built = json.loads((native.LIB_DIR / native.MANIFEST).read_text())
    assert "-fprofile-use" in built["cflags"]
    assert "-fno-semantic-interposition" in built["cflags"]
    counts = list((native.LIB_DIR.parent / "obj").rglob("*.gcda"))
    assert any(path.stat().st_size > 0 for path in counts)
