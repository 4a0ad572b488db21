"""A minimal HTTP/1.1 client over one raw socket, for the tests of molt's HTTP servers (test_http_server,
test_admin_http): what curl and the SDKs never send (pipelining, half-close, malformed requests)."""

from __future__ import annotations

import json
import socket

from conftest import API_TOKEN_HEADER

READ_TIMEOUT_S = 15


def request_bytes(method: str, path: str, body: bytes | str | list | dict | None = None, headers=None,
                  token: str | None = None, version: str = "HTTP/1.1") -> bytes:
    """One request, framed with Content-Length when it has a body."""
    if isinstance(body, (list, dict)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    lines = [f"{method} {path} {version}", "Host: molt"]
    if token is not None:
        lines.append(f"{API_TOKEN_HEADER}: {token}")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"HTTP {self.status} {self.headers} {self.body[:300]!r}"


class Connection:
    """One TCP connection to one of molt's HTTP ports; `read_answer()` parses one response (Content-Length or none)."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT_S)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def read_answer(self, head_request: bool = False) -> Answer:
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionError(f"connection closed before an answer (had {self.buffer!r})")
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
        length = 0 if head_request else int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            if not self._fill():
                raise ConnectionError("connection closed in the middle of a body")
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Answer(int(status_line.split(" ")[1]), headers, body)

    def closed_by_peer(self, timeout: float = READ_TIMEOUT_S) -> bool:
        """True when molt closes the connection (EOF or reset) within `timeout` with nothing more to read."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self) -> None:
        self.sock.close()
