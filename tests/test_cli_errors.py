"""The first errors an operator meets are one line each, with the documented exit code (stream.errors)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stream import errors

ROOT = Path(__file__).resolve().parents[1]


def privwatch(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PRIVWATCH_") or k == "PRIVWATCH_PURE"}
    return subprocess.run([sys.executable, "-m", "stream", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**clean, **(env or {})}, input=stdin, timeout=120)


def one_line_error(out: subprocess.CompletedProcess[str], code: int, says: str) -> None:
    assert out.returncode == code, out.stderr
    assert "Traceback" not in out.stderr
    errors_said = [line for line in out.stderr.splitlines() if line.startswith("privwatch: error:")]
    assert len(errors_said) == 1 and says in errors_said[0], out.stderr
    assert out.stderr.rstrip().endswith(errors_said[0])
    assert len(out.stderr.splitlines()) <= 2, out.stderr  # at most the start-up line before it


def test_an_unreachable_broker_is_one_line_and_exit_4() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = privwatch("run", "--bootstrap-servers", f"127.0.0.1:{port}", "--metrics-port", "0", "--no-durable-state")
    one_line_error(out, errors.KafkaUnavailable.exit_code, f"no Kafka broker answered at 127.0.0.1:{port}")
    assert errors.KafkaUnavailable.exit_code == 4


def test_durable_state_without_a_key_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """The key is required unless durable state is turned off; secrets are never flags."""
    one_line_error(privwatch("run", "--metrics-port", "0"), 2, "durable state needs a state_key")
    out = privwatch("run", "--metrics-port", "0", "--state-key", "k" * 32)
    assert out.returncode == 2 and "unrecognized arguments: --state-key" in out.stderr
    short = tmp_path / "key"
    short.write_text("short\n")
    one_line_error(privwatch("run", "--metrics-port", "0", "--state-key-file", str(short)), 2, "at least 16 bytes")
    one_line_error(privwatch("run", "--state-key-file", str(tmp_path / "nope")), 2, "cannot read state_key_file")


def test_a_busy_metrics_port_is_one_line_and_exit_6() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        out = privwatch("run", "--metrics-host", "127.0.0.1", "--metrics-port", str(port))
    one_line_error(out, 6, f"cannot listen on 127.0.0.1:{port}")


@pytest.mark.parametrize("what", ["missing", "directory"])
def test_replay_of_a_missing_or_unreadable_file_is_one_line_and_exit_3(tmp_path: Path, what: str) -> None:
    path = tmp_path / "nope.jsonl" if what == "missing" else tmp_path
    out = privwatch("replay", str(path), "--output", str(tmp_path / "alerts.jsonl"))
    one_line_error(out, 3, f"cannot read the input {path}")


def test_bad_settings_are_one_line_and_exit_2(tmp_path: Path) -> None:
    one_line_error(privwatch("run", "--max-poll-records", "0"), 2, "max_poll_records")
    config = tmp_path / "privwatch.toml"
    config.write_text('bootstrap_server = "x:1"\n')  # a typo of bootstrap_servers
    one_line_error(privwatch("run", "--config", str(config)), 2, "bootstrap_server")
    one_line_error(privwatch("run", env={"PRIVWATCH_NO_SUCH_SETTING": "1"}), 2, "PRIVWATCH_NO_SUCH_SETTING")
    one_line_error(privwatch("run", "--config", str(tmp_path / "missing.toml")), 2, "cannot read config file")


def test_out_of_order_replay_input_is_counted_and_reported(tmp_path: Path) -> None:
    from factories import T0, access, lines

    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines([access("e2", T0 + 60), access("e1", T0), access("e3", T0 + 120)])))
    out = privwatch("replay", str(events), "--output", str(tmp_path / "alerts.jsonl"))
    assert out.returncode == 0, out.stderr
    assert "3 events, 0 rejected (none), 1 out of event-time order" in out.stderr
    assert "not in event-time order" in out.stderr


def test_verbose_works_after_the_subcommand_and_pretty_renders_alerts(tmp_path: Path) -> None:
    from factories import lines, routine_then_bulk

    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines(routine_then_bulk("u-1", days=3))))
    out = privwatch("replay", str(events), "--pretty", "-v")
    assert out.returncode == 0, out.stderr
    assert "[" in out.stdout and "volume  u-1" in out.stdout
    assert "\033[" not in out.stdout  # not a terminal: no escape codes
    from stream.cli import build_parser

    assert build_parser().parse_args(["replay", "x", "-v"]).verbose is True
    assert build_parser().parse_args(["-v", "replay", "x"]).verbose is True
    assert build_parser().parse_args(["replay", "x"]).verbose is False


def test_help_explains_every_setting_with_its_values() -> None:
    from stream.settings import Settings

    out = privwatch("run", "--help")
    text = " ".join(out.stdout.split())
    assert out.returncode == 0
    for name in Settings.model_fields:
        assert f"PRIVWATCH_{name.upper()}" in text.replace("- ", "-")
    assert "one of earliest, latest" in text
    assert "--durable-state, --no-durable-state" in text
    assert "exit codes" in privwatch("--help").stdout


def test_deliver_needs_an_alertmanager_and_takes_no_secret_flags() -> None:
    one_line_error(privwatch("deliver", "--metrics-port", "0"), 2, "privwatch deliver needs alertmanager_url")
    out = privwatch("deliver", "--alertmanager-url", "http://am", "--alertmanager-password", "pw")
    assert out.returncode == 2 and "unrecognized arguments: --alertmanager-password" in out.stderr
    assert "--alertmanager-password-file" in privwatch("deliver", "--help").stdout
