"""The README stays short and leads with the two commands; every link in it and in docs/ resolves;
nothing in the repository points outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_readme_is_short_and_leads_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 120
    first_screen = "\n".join(lines[:30])
    assert "make demo" in first_screen and "make test" in first_screen


@pytest.mark.parametrize("page", [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    for target in LINK.findall(page.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to missing {target}"


def test_nothing_refers_to_a_path_outside_the_repository() -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    outside = re.compile(r"\.\./shared|shared/contract|shared/datasets|/work/")
    offenders = [f for f in files if (ROOT / f).is_file() and f != "tests/test_docs.py"
                 and outside.search((ROOT / f).read_text(errors="ignore"))]
    assert not offenders, offenders


def test_every_detector_parameter_is_documented() -> None:
    from detectors.registry import REGISTRY, parameters

    page = (ROOT / "docs" / "detectors.md").read_text()
    for name in REGISTRY:
        section = page.split(f"### `{name}`", 1)[1].split("### ", 1)[0]
        missing = [p for p in parameters(name) if f"| `{p}` |" not in section]
        assert not missing, f"docs/detectors.md: {name} parameters without a row: {missing}"


def test_runbooks_name_real_configuration_keys() -> None:
    from detectors.registry import REGISTRY, parameters
    from stream.enrich.directory import Person
    from stream.settings import Settings

    for page in sorted((ROOT / "docs" / "runbooks").glob("*.md")):
        for paragraph in page.read_text().split("\n\n"):
            for detector in re.findall(r"detector_params\.(\w+)\]", paragraph):
                assert detector in REGISTRY, f"{page.name}: no detector {detector}"
                names = {*parameters(detector), *Settings.model_fields, *REGISTRY, *Person.model_fields}
                unknown = {k for k in re.findall(r"`([a-z_]+)`", paragraph)} - names
                assert not unknown, f"{page.name}: {sorted(unknown)} are not keys of {detector} or settings"
