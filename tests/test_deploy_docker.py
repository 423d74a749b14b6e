"""The Dockerfile and .dockerignore agree with the code: what is copied exists and is not ignored, the
image runs unprivileged with the health check and entry point, and it ships the compiled detectors.

No Docker here, so the file is checked by parsing (as are compose and Kubernetes, in test_deploy_files.py).
"""

from __future__ import annotations

import fnmatch
import json
import tomllib
from pathlib import Path

from stream.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
METRICS_PORT = Settings().metrics_port  # 9464


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [tuple(line.strip().split(None, 1)) for line in text.splitlines()  # type: ignore[misc]
            if line.strip() and not line.strip().startswith("#")]


def test_dockerfile() -> None:
    instructions = dockerfile_instructions()
    by_name: dict[str, list[str]] = {}
    for name, args in instructions:
        by_name.setdefault(name.upper(), []).append(args)
    assert all(image.split()[0].startswith("python:3.11-slim@sha256:") for image in by_name["FROM"])
    assert len({image.split()[0] for image in by_name["FROM"]}) == 1  # both stages, one pinned digest
    for args in by_name["COPY"]:
        if args.startswith("--from"):
            continue
        for source in args.split()[:-1]:
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
    assert by_name["USER"][-1].split(":")[0] not in {"0", "root"}
    assert by_name["EXPOSE"] == [str(METRICS_PORT)]
    assert "/healthz" in by_name["HEALTHCHECK"][0] and "urllib" in by_name["HEALTHCHECK"][0]
    assert json.loads(by_name["ENTRYPOINT"][-1]) == ["privwatch"]
    assert json.loads(by_name["CMD"][-1]) == ["run"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "privwatch" in scripts


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``path`` out of the build context: the last pattern that matches it or
    one of its parent directories decides, and a ``!`` pattern brings it back."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if any(fnmatch.fnmatch(c, pattern.lstrip("!")) for c in candidates):
            ignored = not negated
    return ignored


def test_dockerignore_keeps_what_the_dockerfile_copies() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert _dockerignored("tests/test_x.py", patterns) and _dockerignored("deploy/k8s", patterns)
    for name, args in dockerfile_instructions():
        if name.upper() == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert not _dockerignored(source, patterns), f"{source} is copied but .dockerignore drops it"


def test_dockerfile_ships_the_compiled_detectors() -> None:
    """The build stage compiles (dev/native/build.py); the image puts the result where
    detectors/native.py looks for it beside an installed package, and refuses to build without it."""
    from detectors import native

    instructions = dockerfile_instructions()
    runs = [args for name, args in instructions if name.upper() == "RUN"]
    assert any("dev/native/build.py" in args for args in runs)
    lib = native.LIB_DIR.relative_to(ROOT)  # .cache/mypyc/lib, relative to the packages' parent
    stage = max(i for i, (name, _) in enumerate(instructions) if name.upper() == "FROM")
    copies = [args.split() for name, args in instructions[stage:] if name.upper() == "COPY"]
    assert ["--from=build", f"/src/{lib}", f"/usr/local/lib/python3.11/site-packages/{lib}"] in copies
    final_runs = [args for name, args in instructions[stage:] if name.upper() == "RUN"]
    assert any("n.status == 'compiled'" in args for args in final_runs)
