#!/usr/bin/env python3
"""Local single-node Apache Kafka (KRaft) for development and tests.

Standard library only. Used three ways:

- by the Makefile: ``python dev/kafka/broker.py up --port 9092`` starts (or reuses) a broker in the
  background and prints its bootstrap address as the last line on stdout; ``down --port 9092`` stops it;
- by the tests, through :class:`LocalKafka` (see ``tests/kafka_fixtures.py``);
- by hand: ``python dev/kafka/broker.py free-ports 2``.

Secure listeners (SASL_SSL with SCRAM, mutual TLS) come from :mod:`security` (``extra_props`` and
``format_args``). The broker runs from the Apache Kafka jars that ``dev/kafka/fetch.sh`` copies from Maven Central into
``.cache/kafka/libs``; this module runs that script itself when the jars are missing.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("privwatch.deploy.kafka")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CACHE = ROOT / ".cache" / "kafka"
DEFAULT_LIBS = CACHE / "libs"
FETCH_SCRIPT = HERE / "fetch.sh"
LOG4J_CONFIG = HERE / "log4j2.properties"
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"

sys.path.insert(0, str(HERE))  # the sibling module below, whether run as a script or loaded by path
from kafka_probe import probe  # noqa: E402
from kafka_support import (  # noqa: E402, F401 - re-exported for the tests and the CLI
    KafkaStartError,
    _pid_alive,
    _tail,
    ensure_libs,
    find_java,
    free_ports,
    libs_complete,
    new_cluster_id,
    single_node_properties,
)

# --------------------------------------------------------------------------- the broker


class LocalKafka:
    """A single-node KRaft Kafka broker+controller run from the Maven Central jars.

    Parameters
    ----------
    port : int
        Client (PLAINTEXT) port on 127.0.0.1.
    controller_port : int, optional
        Controller port; default ``port + 1``.
    data_dir : str or Path
        Directory for ``server.properties``, the log dirs and the broker log. Kept across restarts.
    libs_dir : str or Path, optional
        Kafka jars; fetched there with ``fetch.sh`` when missing. Default ``.cache/kafka/libs``.
    heap : str
        JVM max heap (``-Xmx``).
    log_file : str or Path, optional
        Broker stdout/stderr; default ``data_dir/broker.log``.
    extra_props : dict, optional
        Additional or overriding broker properties.
    jvm_opts : sequence of str, optional
        Extra JVM options for the broker, e.g. ``("-XX:TieredStopAtLevel=1",)`` for faster start-up.
    format_args : sequence of str, optional
        Extra arguments of the storage format, e.g. SCRAM users (:func:`security.scram_format_args`).
    """

    def __init__(
        self,
        port: int,
        controller_port: int | None = None,
        data_dir: str | os.PathLike[str] = CACHE / "data",
        libs_dir: str | os.PathLike[str] | None = None,
        heap: str = "512m",
        log_file: str | os.PathLike[str] | None = None,
        extra_props: dict[str, str] | None = None,
        jvm_opts: Sequence[str] = (),
        format_args: Sequence[str] = (),
    ) -> None:
        self.port = int(port)
        self.controller_port = int(controller_port) if controller_port else self.port + 1
        self.data_dir = Path(data_dir).resolve()
        self.libs_dir = Path(libs_dir).resolve() if libs_dir else DEFAULT_LIBS.resolve()
        self.heap = heap
        self.log_file = Path(log_file).resolve() if log_file else self.data_dir / "broker.log"
        self.extra_props = dict(extra_props or {})
        self.jvm_opts = tuple(jvm_opts)
        self.format_args = tuple(format_args)
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"LocalKafka(bootstrap={self.bootstrap!r}, pid={self.pid}, data_dir={str(self.data_dir)!r})"

    @property
    def bootstrap(self) -> str:
        """Bootstrap address, ``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    @property
    def properties_file(self) -> Path:
        """Path of the generated ``server.properties``."""
        return self.data_dir / "server.properties"

    @property
    def log_dir(self) -> Path:
        """Kafka log (data) directory."""
        return self.data_dir / "logs"

    # ----------------------------------------------------------------- configuration

    def properties(self) -> dict[str, str]:
        """Return the broker properties (defaults for a fast single-node test broker + extras)."""
        return {**single_node_properties(self.port, self.controller_port, self.log_dir), **self.extra_props}

    def _write_properties(self) -> None:
        """Write ``server.properties`` into the data dir."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lines = [f"{k}={v}" for k, v in self.properties().items()]
        self.properties_file.write_text("\n".join(lines) + "\n")

    def _java_cmd(self, main_class: str, *args: str, jvm_opts: tuple[str, ...] = ()) -> list[str]:
        """Build a java command line for ``main_class`` on the Kafka classpath."""
        return [
            find_java(),
            *jvm_opts,
            f"-Xmx{self.heap}",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            str(self.libs_dir / "*"),
            main_class,
            *args,
        ]

    def is_formatted(self) -> bool:
        """Tell whether the KRaft storage in the data dir is formatted."""
        return (self.log_dir / "meta.properties").is_file()

    def _format(self) -> None:
        """Format KRaft storage (new cluster id, standalone controller quorum)."""
        cluster_id = new_cluster_id()
        cmd = self._java_cmd(
            STORAGE_TOOL,
            "format",
            "-t",
            cluster_id,
            "-c",
            str(self.properties_file),
            "--standalone",
            *self.format_args,
            jvm_opts=("-XX:TieredStopAtLevel=1",),
        )
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise KafkaStartError(f"kafka StorageTool format failed: {out.stdout}{out.stderr}"[-3000:])
        log.info("formatted KRaft storage in %s (cluster id %s)", self.log_dir, cluster_id)

    # ----------------------------------------------------------------- lifecycle

    def running(self) -> bool:
        """Tell whether the broker process is alive."""
        if self._proc is not None:
            return self._proc.poll() is None
        return self.pid is not None and _pid_alive(self.pid)

    def start(self) -> LocalKafka:
        """Start the broker JVM in its own process group (format storage first if needed); returns
        ``self``: call :meth:`wait_ready` next."""
        if self.running():
            return self
        ensure_libs(self.libs_dir)
        self._write_properties()
        if not self.is_formatted():
            self._format()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            self._proc = subprocess.Popen(
                self._java_cmd(MAIN_CLASS, str(self.properties_file), jvm_opts=self.jvm_opts),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        self.pid = self._proc.pid
        log.info("started Kafka pid %s on %s (log %s)", self.pid, self.bootstrap, self.log_file)
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> LocalKafka:
        """Block until the broker answers ApiVersions and Metadata lists it as alive.

        Raises
        ------
        KafkaStartError
            When the process dies or the timeout passes; the message includes the log tail.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running():
                raise KafkaStartError(
                    f"Kafka exited during start-up; last lines of {self.log_file}:\n{_tail(self.log_file)}"
                )
            if probe("127.0.0.1", self.port):
                return self
            time.sleep(0.2)
        raise KafkaStartError(
            f"Kafka not ready on {self.bootstrap} after {timeout_s:.0f}s; "
            f"last lines of {self.log_file}:\n{_tail(self.log_file)}"
        )

    def _signal_group(self, sig: int) -> None:
        """Send ``sig`` to the broker's process group (fall back to the process)."""
        if self.pid is None:
            return
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def _wait_exit(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the process to exit; True when it did."""
        if self._proc is not None:
            try:
                self._proc.wait(timeout=timeout_s)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.pid is None or not _pid_alive(self.pid):
                return True
            time.sleep(0.1)
        return False

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop gracefully: SIGTERM to the process group, wait, then SIGKILL."""
        if not self.running():
            self._forget()
            return
        self._signal_group(signal.SIGTERM)
        if not self._wait_exit(timeout_s):
            log.warning("Kafka pid %s did not stop in %.0fs; killing it", self.pid, timeout_s)
            self._signal_group(signal.SIGKILL)
            self._wait_exit(10.0)
        log.info("stopped Kafka on %s", self.bootstrap)
        self._forget()

    def kill(self) -> None:
        """Kill the broker with SIGKILL (crash simulation); data stays on disk."""
        self._signal_group(signal.SIGKILL)
        self._wait_exit(10.0)
        log.info("killed Kafka on %s", self.bootstrap)
        self._forget()

    def restart(self, timeout_s: float = 90.0, graceful: bool = True) -> LocalKafka:
        """Stop (or kill, with ``graceful=False``) and start again on the same ports and data."""
        if graceful:
            self.stop()
        else:
            self.kill()
        return self.start().wait_ready(timeout_s)

    def _forget(self) -> None:
        """Drop the process handle after exit."""
        self._proc, self.pid = None, None

    def __enter__(self) -> LocalKafka:
        return self.start().wait_ready()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- CLI


def _pid_file(port: int) -> Path:
    return CACHE / f"broker-{port}.pid"


def _read_pid(port: int) -> int | None:
    """Return the pid recorded for ``port`` if that process is alive and is our broker for that port."""
    try:
        pid = int(_pid_file(port).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return None
    args = cmdline.split("\0")
    ours = str(_broker_for_port(port, "512m").properties_file)
    if MAIN_CLASS not in args or ours not in args or not _pid_alive(pid):
        return None
    return pid


def _broker_for_port(port: int, heap: str) -> LocalKafka:
    return LocalKafka(port, data_dir=CACHE / f"data-{port}", heap=heap)


def cmd_up(args: argparse.Namespace) -> int:
    """Start (or reuse) a background broker; print its bootstrap address last on stdout."""
    broker = _broker_for_port(args.port, args.heap)
    pid = _read_pid(args.port)
    if pid is not None:
        broker.pid = pid
        log.info("reusing Kafka pid %s on %s", pid, broker.bootstrap)
    else:
        if probe("127.0.0.1", args.port, timeout_s=1.0):
            log.info("a Kafka broker not started by us already answers on %s; using it", broker.bootstrap)
            print(broker.bootstrap)
            return 0
        t0 = time.monotonic()
        broker.start()
        _pid_file(args.port).write_text(f"{broker.pid}\n")
        try:
            broker.wait_ready(args.timeout)
        except KafkaStartError:
            broker.stop()
            _pid_file(args.port).unlink(missing_ok=True)
            raise
        log.info("Kafka ready on %s in %.1fs", broker.bootstrap, time.monotonic() - t0)
        print(broker.bootstrap)
        return 0
    broker.wait_ready(args.timeout)
    print(broker.bootstrap)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    """Stop the background broker recorded for ``--port``."""
    pid = _read_pid(args.port)
    if pid is None:
        log.info("no Kafka started by us on port %s", args.port)
    else:
        broker = _broker_for_port(args.port, "512m")
        broker.pid = pid
        broker.stop()
    _pid_file(args.port).unlink(missing_ok=True)
    return 0


def cmd_free_ports(args: argparse.Namespace) -> int:
    """Print ``N`` free ports, one per line."""
    for p in free_ports(args.n):
        print(p)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the CLI argument parser."""
    parser = argparse.ArgumentParser(description="Local single-node Apache Kafka (KRaft) for privwatch")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start (or reuse) a broker; prints the bootstrap address")
    up.add_argument("--port", type=int, default=int(os.environ.get("KAFKA_PORT", "9092")))
    up.add_argument("--heap", default="512m")
    up.add_argument("--timeout", type=float, default=90.0)
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop the broker started by 'up'")
    down.add_argument("--port", type=int, default=int(os.environ.get("KAFKA_PORT", "9092")))
    down.set_defaults(func=cmd_down)
    fp = sub.add_parser("free-ports", help="print N free TCP ports")
    fp.add_argument("n", type=int, nargs="?", default=2)
    fp.set_defaults(func=cmd_free_ports)
    return parser


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; progress goes to stderr, the result to stdout."""
    logging.basicConfig(level=logging.INFO, format="kafka: %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        return args.func(args)
    except KafkaStartError as exc:
        log.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
