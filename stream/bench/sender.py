"""The load generator's sender for ``privwatch bench``'s latency phase: Kafka's own console producer.

One JVM per input topic (``kafka-tools``, fetched with the broker's jars), fed ``key<TAB>value``
lines through a pipe. It takes about 0.2 of a core at 10k events/s where kafka-python took 0.75: on
a 2-core machine shared with the broker and the service, kafka-python's generator took CPU the
service under test needed (see :mod:`stream.bench.latency`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

#: Where ``make kafka-fetch`` puts the Kafka jars (``kafka-tools`` among them) in a source checkout.
DEFAULT_LIBS = Path(__file__).resolve().parents[2] / ".cache" / "kafka" / "libs"
CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
#: A small heap, the serial collector and the C1 compiler only: a short-lived JVM that sends a few
#: thousand records per second needs no more (C2's compiler threads cost more CPU than they save here)
JVM_OPTS = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
            "-Dfile.encoding=UTF-8")
#: Pipe buffer to each JVM (Linux ``F_SETPIPE_SZ``): a tick's burst fits without blocking the pacer
PIPE_BYTES = 1 << 20


def java() -> str:
    """``$JAVA_HOME/bin/java``, else ``java`` on the PATH."""
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not found or not os.access(found, os.X_OK):
        raise RuntimeError("the console-producer load generator needs Java 17+ (make sysdeps, or set JAVA_HOME)")
    return found


class ConsoleSender:
    """Sends records through Kafka's console producer: one JVM per topic, ``key<TAB>value`` lines on its
    standard input, written once per pacing tick (:meth:`flush`). The producer partitions by the key
    as kafka-python's default partitioner does (murmur2), and lingers 5 ms as the old generator did.
    Pre-encoded JSON never holds a raw tab or newline (orjson escapes control characters); keys are
    checked."""

    name = "console-producer"  # the result's ``generator``

    def __init__(self, bootstrap: str, topics: tuple[str, str], libs: Path) -> None:
        if not any(libs.glob("kafka-tools-*.jar")):
            raise RuntimeError(f"no kafka-tools jar in {libs}: run 'make kafka-fetch' or pass --kafka-libs")
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - the JVMs' output, read if one fails (close)
        self.procs = [subprocess.Popen(
            [java(), *JVM_OPTS, "-cp", str(libs / "*"), CONSOLE_PRODUCER, "--bootstrap-server", bootstrap,
             "--topic", topic, "--property", "parse.key=true", "--property", "key.separator=\t",
             "--producer-property", "linger.ms=5", "--producer-property", "batch.size=65536"],
            stdin=subprocess.PIPE, stdout=self.log, stderr=self.log) for topic in topics]
        self.pipes = [proc.stdin for proc in self.procs if proc.stdin is not None]
        for pipe in self.pipes:
            with contextlib.suppress(OSError):  # else the default 64 KiB: bursts then wait for the JVM
                fcntl.fcntl(pipe, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self.lines: tuple[list[bytes], list[bytes]] = ([], [])

    def send(self, topic: int, key: bytes, value: bytes) -> None:
        if b"\t" in key or b"\n" in key:
            raise ValueError(f"a key with a tab or a newline cannot go through the console producer: {key!r}")
        self.lines[topic].append(b"%s\t%s\n" % (key, value))

    def flush(self) -> None:
        for pipe, lines in zip(self.pipes, self.lines, strict=True):
            if lines:
                pipe.write(b"".join(lines))
                pipe.flush()
                lines.clear()

    def check(self) -> None:
        """Raise, with the JVMs' output, if one of them has exited."""
        codes = [proc.poll() for proc in self.procs]
        if any(code is not None for code in codes):
            self._fail(codes)

    def close(self) -> None:
        """Flush, end the input and wait for every record to be acknowledged (the JVMs exit then)."""
        self.flush()
        for pipe in self.pipes:
            pipe.close()
        try:
            codes = [proc.wait(timeout=60) for proc in self.procs]
        except subprocess.TimeoutExpired:
            self.kill()  # a JVM that cannot deliver its last records (broker gone): do not leave it behind
            raise
        if any(codes):
            self._fail(codes)
        self.log.close()

    def kill(self) -> None:
        """Stop the JVMs at once (after a failure: unsent records are dropped)."""
        for proc in self.procs:
            proc.kill()
            proc.wait()
        self.log.close()

    def _fail(self, codes: Sequence[int | None]) -> None:
        self.log.seek(0)
        output = self.log.read()[:2000].decode(errors="replace")  # the error comes first, then the usage
        raise RuntimeError(f"console producer exit codes {codes} (None: running): {output}")
