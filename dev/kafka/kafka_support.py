"""Helpers for the local broker: free ports, Java, the Kafka jars, cluster ids, process checks."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import socket
import subprocess
from pathlib import Path

log = logging.getLogger("privwatch.deploy.kafka")

HERE = Path(__file__).resolve().parent
FETCH_SCRIPT = HERE / "fetch.sh"


class KafkaStartError(RuntimeError):
    """The local broker could not be started or did not become ready."""


# --------------------------------------------------------------------------- helpers


def free_ports(n: int = 1) -> list[int]:
    """Return ``n`` distinct TCP ports that are free on 127.0.0.1 right now.

    Parameters
    ----------
    n : int
        How many ports.

    Returns
    -------
    list of int
        Ports chosen by the kernel (a later bind can still race with other processes).
    """
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def find_java() -> str:
    """Return the java executable: ``$JAVA_HOME/bin/java`` if set, else ``java`` on PATH.

    Raises
    ------
    KafkaStartError
        When no java executable can be found.
    """
    home = os.environ.get("JAVA_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        if os.access(java, os.X_OK):
            return str(java)
        raise KafkaStartError(f"JAVA_HOME is set but {java} is not executable; fix JAVA_HOME or unset it")
    found = shutil.which("java")
    if not found:
        raise KafkaStartError("java not found (need Java 17+): run 'make sysdeps' or set JAVA_HOME")
    return found


def libs_complete(libs_dir: Path) -> bool:
    """Tell whether ``libs_dir`` holds a complete fetch of the current ``pom.xml``.

    ``fetch.sh`` writes the pom's SHA-256 into ``libs_dir/.complete`` after a successful fetch.
    """
    try:
        stamp = (libs_dir / ".complete").read_text().strip()
    except OSError:
        return False
    want = hashlib.sha256((HERE / "pom.xml").read_bytes()).hexdigest()
    return stamp == want and any(libs_dir.glob("kafka_2.13-*.jar"))


def ensure_libs(libs_dir: Path) -> Path:
    """Make sure the Kafka jars are in ``libs_dir``, running ``fetch.sh`` when they are not.

    Parameters
    ----------
    libs_dir : Path
        Directory of jars.

    Returns
    -------
    Path
        ``libs_dir``.

    Raises
    ------
    KafkaStartError
        When fetching fails.
    """
    if libs_complete(libs_dir):
        return libs_dir
    env = dict(os.environ, KAFKA_LIBS_DIR=str(libs_dir))
    log.info("fetching Kafka jars into %s (fetch.sh)", libs_dir)
    proc = subprocess.run(["bash", str(FETCH_SCRIPT)], env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not libs_complete(libs_dir):
        raise KafkaStartError(
            f"could not fetch the Kafka jars into {libs_dir} (exit {proc.returncode}); "
            f"need mvn and network access to Maven Central ('make kafka-fetch'):\n{proc.stderr[-2000:]}"
        )
    return libs_dir


def new_cluster_id() -> str:
    """Return a random KRaft cluster id, like ``kafka-storage random-uuid`` (base64url, no padding).

    >>> len(new_cluster_id())
    22
    """
    while True:
        cid = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _pid_alive(pid: int) -> bool:
    """Tell whether ``pid`` is a running (not zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _tail(path: Path, n_lines: int = 30) -> str:
    """Return the last lines of a text file, or an empty string."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n_lines:])
    except OSError:
        return ""


def single_node_properties(port: int, controller_port: int, log_dir: Path) -> dict[str, str]:
    """``server.properties`` of a fast single-node KRaft broker+controller on loopback."""
    c = f"127.0.0.1:{controller_port}"
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": c,
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://{c}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "delete.topic.enable": "true",
    }
