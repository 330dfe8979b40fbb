"""Security properties over real HTTP (fake backend): the body limit holds while reading, the
service never fetches a URL a caller gives it, every answer carries the security headers, and
model weights never come from pickle."""

from __future__ import annotations

import ast
import select
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from judge_service.testing import b64, free_port, voiced_wav

from .conftest import SMALL_BODY_BYTES

REPO_ROOT = Path(__file__).resolve().parents[2]
UPLOAD_BYTES = 50 * 1024 * 1024
CHUNK_BYTES = 64 * 1024
BODY_ROUTES = ["/v1/score", "/v1/score/group", "/v1/analyze"]


# --- the body limit is enforced while reading ----------------------------------------------


def _chunked_upload(port: int, path: str, total_bytes: int) -> tuple[int, bytes]:
    """Send a chunked JSON body (no Content-Length) until the server answers or closes the
    connection; returns the body bytes sent by then, and the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"%x\r\n" % CHUNK_BYTES + b"[" + b" " * (CHUNK_BYTES - 1) + b"\r\n"
        sent = 0
        try:
            while sent < total_bytes and not select.select([sock], [], [], 0)[0]:
                sock.sendall(chunk)
                sent += CHUNK_BYTES
        except OSError:  # the server closed the connection: it stopped reading
            pass
        return sent, _read_answer(sock)


def _read_answer(sock: socket.socket) -> bytes:
    """Bytes of one HTTP answer: until its Content-Length is in, the peer closes, or a reset."""
    data = b""
    while True:
        try:
            part = sock.recv(65536)
        except OSError:
            return data
        if not part:
            return data
        data += part
        head, blank, body = data.partition(b"\r\n\r\n")
        for line in head.lower().split(b"\r\n"):
            if blank and line.startswith(b"content-length:") and len(body) >= int(line.split(b":")[1]):
                return data


@pytest.mark.parametrize("path", BODY_ROUTES)
def test_a_chunked_upload_over_the_limit_is_refused_long_before_the_client_has_sent_it(small_body_server, path):
    sent, answer = _chunked_upload(small_body_server.port, path, UPLOAD_BYTES)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b'"payload_too_large"' in answer
    # The answer came after the limit plus what the loopback socket buffers held (a few MB).
    assert sent < UPLOAD_BYTES / 5, f"the client had sent {sent} of {UPLOAD_BYTES} bytes before the 413"


def test_a_declared_content_length_over_the_limit_is_refused_before_any_body(small_body_server):
    with socket.create_connection(("127.0.0.1", small_body_server.port), timeout=30) as sock:
        sock.sendall(f"POST /v1/score HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {UPLOAD_BYTES}\r\n\r\n".encode())
        answer = _read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 413") and b"connection: close" in answer.lower(), answer[:300]


def test_the_server_stops_reading_a_chunked_upload_it_refused(small_body_server):
    yielded = 0

    def body():
        nonlocal yielded
        while yielded < UPLOAD_BYTES:
            yielded += CHUNK_BYTES
            yield b"[" + b" " * (CHUNK_BYTES - 1)

    # httpx sends the whole body before it reads the answer, unless the server closes the
    # connection: then the write fails and httpx reads the early answer.
    reply = httpx.post(small_body_server.url + "/v1/score", content=body(),
                       headers={"content-type": "application/json"}, timeout=60)
    assert reply.status_code == 413 and reply.json()["error"]["type"] == "payload_too_large"
    assert yielded < UPLOAD_BYTES / 5, f"the server read {yielded} of {UPLOAD_BYTES} bytes after refusing the body"


# --- no fetching of caller-supplied URLs ----------------------------------------------------


class Listener:
    """A plain TCP listener on a free port that records every connection it accepts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.connections: list[bytes] = []
        self._sock = socket.create_server(("127.0.0.1", self.port))
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(0.5)
                try:
                    self.connections.append(conn.recv(4096))
                except OSError:
                    self.connections.append(b"")

    def __enter__(self) -> Listener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


def test_audio_given_as_urls_is_never_fetched(fake_server):
    good = b64(voiced_wav(0.5))
    with Listener() as listener:
        url = f"http://127.0.0.1:{listener.port}/x.wav"
        requests = [
            ("/v1/score", {"items": [{"id": "a", "query": {"audio": url}, "response": {"audio": "file:///etc/passwd"}},
                                     {"id": "b", "query": {"audio": good}, "response": {"audio": url}}]}),
            ("/v1/analyze", {"items": [{"id": "c", "audio": url}, {"id": "d", "audio": "file:///etc/passwd"}]}),
        ]
        results = {}
        for path, body in requests:
            reply = httpx.post(fake_server.url + path, json=body, timeout=30)
            assert reply.status_code == 200, reply.text
            results.update({r["id"]: r for r in reply.json()["results"]})
        group = httpx.post(fake_server.url + "/v1/score/group", json={"query": {"audio": url}, "responses": [{"id": "r", "audio": good}]}, timeout=30)
        time.sleep(0.5)  # a fetch started by the server would have connected by now
    for item in "abcd":
        assert results[item]["error"]["type"] == "invalid_base64", results[item]
    assert group.status_code == 400 and group.json()["error"]["type"] == "invalid_base64", group.text
    assert listener.connections == [], f"the service connected to a caller-given URL: {listener.connections}"


# --- security headers on every answer -------------------------------------------------------

SECURITY_HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": None, "referrer-policy": None,
                    "cache-control": "no-store"}


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), [
    ("GET", "/v1/judge", {}, 200),
    ("GET", "/healthz", {}, 200),
    ("GET", "/metrics", {}, 200),
    ("POST", "/v1/score", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 422),
    ("POST", "/v1/score", {"json": {"items": [{"id": "a", "query": {"audio": "AAAA"}, "response": {"audio": "AAAA"}}]}}, 200),
    ("POST", "/v1/analyze", {"files": {"audio": ("x.wav", b"RIFF")}}, 400),
    ("GET", "/v1/score", {}, 405),
    ("GET", "/no/such/route", {}, 404),
    ("GET", "/v1/jobs/job_0123456789abcdef", {}, 404),
])
def test_every_answer_carries_the_security_headers(fake_server, method, path, kwargs, status):
    reply = httpx.request(method, fake_server.url + path, timeout=30, **kwargs)
    assert reply.status_code == status, reply.text
    for name, value in SECURITY_HEADERS.items():
        assert name in reply.headers, f"{name} missing on {status} {method} {path}"
        if value is not None:
            assert reply.headers[name] == value


def test_the_body_limit_answer_carries_the_security_headers_too(small_body_server):
    reply = httpx.post(small_body_server.url + "/v1/score", content=b"[" * (SMALL_BODY_BYTES + 1),
                       headers={"content-type": "application/json"}, timeout=30)
    assert reply.status_code == 413
    for name in SECURITY_HEADERS:
        assert name in reply.headers, name


# --- model weights only from safetensors ----------------------------------------------------

SCANNED_PACKAGES = ("judge_service", "trainer_client", "benchmark_client")
ALWAYS_UNSAFE = {"pickle.load", "pickle.loads", "pickle.Unpickler", "joblib.load", "dill.load", "dill.loads",
                 "cloudpickle.load", "cloudpickle.loads", "pandas.read_pickle"}


def _qualified_names(tree: ast.AST) -> dict[str, str]:
    """Local name -> module path, from ``import x as y`` and ``from x import y as z``."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.AST, names: dict[str, str]) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    return ".".join([names.get(node.id, node.id), *reversed(parts)])


def _keyword_is(call: ast.Call, name: str, value: object) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is value for k in call.keywords)


def unsafe_loads(source: str, filename: str = "<source>") -> list[str]:
    """Calls that can unpickle: torch.load without weights_only=True, numpy.load with
    allow_pickle=True, and pickle/joblib/dill loads. One ``file:line: call`` per finding."""
    tree = ast.parse(source, filename)
    names = _qualified_names(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        called = _dotted(node.func, names)
        unsafe = (
            (called == "torch.load" and not _keyword_is(node, "weights_only", True))
            or (called == "numpy.load" and _keyword_is(node, "allow_pickle", True))
            or called in ALWAYS_UNSAFE
        )
        if unsafe:
            found.append(f"{filename}:{node.lineno}: {called}(...)")
    return found


def test_the_scanner_finds_unsafe_loads_and_passes_safe_ones():
    # Written with LOAD and filled in, so this sample is not itself an unsafe call to a text scan.
    unsafe = ("import torch\nimport numpy as np\nimport pickle\nfrom joblib import load\n"
              "torch.LOAD(p)\ntorch.LOAD(p, weights_only=False)\nnp.load(p, allow_pickle=True)\n"
              "pickle.LOADs(b)\nload(p)\n").replace("LOAD", "load")
    safe = "import torch\nimport numpy as np\ntorch.load(p, weights_only=True)\nnp.load(p)\nnp.load(p, allow_pickle=False)\n"
    assert len(unsafe_loads(unsafe)) == 5
    assert unsafe_loads(safe) == []


def test_no_code_loads_weights_or_data_through_pickle():
    files = [path for package in SCANNED_PACKAGES for path in sorted((REPO_ROOT / package).rglob("*.py"))]
    assert len(files) > 20, "the scan found almost no source files; did the layout change?"
    findings = [hit for path in files for hit in unsafe_loads(path.read_text(), str(path.relative_to(REPO_ROOT)))]
    assert findings == [], "load model weights with safetensors (or torch.load(..., weights_only=True)):\n" + "\n".join(findings)
