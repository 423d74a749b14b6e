from __future__ import annotations

import subprocess
import sys

import orjson
from contract_schemas import validator
from factories import lines, routine_then_bulk

from stream.replay.replay import replay_lines

GARBAGE = [b"{oops", b"", b'{"type": "access"}', "caf\u00e9 \U0001f600".encode(), b"\xff\xff", b"null"]


def _stream_with_garbage():
    good = lines(routine_then_bulk())
    mixed = good[:50] + GARBAGE + good[50:]
    return mixed, len(good)


def test_replay_counts_bad_lines_and_pages_on_bulk_export():
    mixed, n_good = _stream_with_garbage()
    result = replay_lines(mixed)
    assert result.processed == n_good
    assert result.rejected == len([g for g in GARBAGE if g.strip()])
    paging = [a for a in result.alerts if a["level"] in {"medium", "high", "critical"}]
    assert [a["evidence_event_ids"][-1] for a in paging] == ["u-4821-bulk"]
    check = validator("alert")
    for alert in result.alerts:
        assert not list(check.iter_errors(alert))


def test_replay_cli_is_deterministic_and_exits_zero(tmp_path):
    mixed, _ = _stream_with_garbage()
    src = tmp_path / "events.jsonl"
    src.write_bytes(b"\n".join(mixed) + b"\n")
    outputs = []
    for run in range(2):
        out = tmp_path / f"alerts-{run}.jsonl"
        proc = subprocess.run(
            [sys.executable, "-m", "stream", "replay", str(src), "--output", str(out)],
            capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert "5 rejected" in proc.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0], "the bulk export should have raised an alert"
    assert all(orjson.loads(line)["type"] == "alert" for line in outputs[0].splitlines())


def test_replay_reads_stdin_and_writes_stdout():
    mixed, _ = _stream_with_garbage()
    proc = subprocess.run(
        [sys.executable, "-m", "stream", "replay", "-"], input=b"\n".join(mixed), capture_output=True, timeout=120
    )
    assert proc.returncode == 0
    assert b"u-4821-bulk" in proc.stdout


def test_the_cli_module_runs_as_a_script_too():
    """``python -m stream.cli`` is the same command as ``python -m stream`` (it used to exit 0 silently)."""
    for module in ("stream", "stream.cli"):
        proc = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, timeout=60)
        assert proc.returncode == 0 and proc.stdout.startswith(b"privwatch "), (module, proc)
