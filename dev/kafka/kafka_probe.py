"""A stdlib-only readiness probe for a Kafka broker: ApiVersions, then Metadata listing a live broker.

Used by ``broker.py`` to tell when a freshly started broker accepts clients, without importing a
Kafka client library.
"""

from __future__ import annotations

import socket
import struct

_API_METADATA = 3
_API_VERSIONS = 18
_METADATA_VERSION = 4


def _request(api_key: int, api_version: int, correlation_id: int, body: bytes = b"") -> bytes:
    """Encode a Kafka request with a v1 header (non-flexible) and the given body."""
    client_id = b"privwatch-probe"
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id)) + client_id
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    """Read exactly ``n`` bytes or raise ``ConnectionError``."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return bytes(buf)


def _roundtrip(sock: socket.socket, request: bytes, correlation_id: int) -> bytes:
    """Send a request and return the response body after the correlation id."""
    sock.sendall(request)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    data = _recv_exact(sock, size)
    (got,) = struct.unpack(">i", data[:4])
    if got != correlation_id:
        raise ConnectionError(f"unexpected correlation id {got}")
    return data[4:]


def probe(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """Tell whether a Kafka broker at ``host:port`` answers and lists itself as alive.

    Sends ApiVersions v0 (error code must be 0), then Metadata v4 for no topics and checks that at
    least one live (unfenced) broker is listed.

    Parameters
    ----------
    host, port
        Broker address.
    timeout_s : float
        Socket timeout.

    Returns
    -------
    bool
        True when the broker is ready for clients.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            body = _roundtrip(sock, _request(_API_VERSIONS, 0, 1), 1)
            (error_code,) = struct.unpack(">h", body[:2])
            if error_code != 0:
                return False
            # Metadata v4: topics = [] (empty array), allow_auto_topic_creation = false.
            meta = _request(_API_METADATA, _METADATA_VERSION, 2, struct.pack(">ib", 0, 0))
            body = _roundtrip(sock, meta, 2)
            _throttle, n_brokers = struct.unpack(">ii", body[:8])
            return n_brokers >= 1
    except (OSError, ConnectionError, struct.error):
        return False
