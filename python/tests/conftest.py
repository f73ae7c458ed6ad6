"""A real portcullis binary in front of a real FastAPI app under uvicorn.

The binary is ``$PORTCULLIS_BIN``, else ``$CARGO_TARGET_DIR/debug/portcullis``,
else ``target/debug/portcullis`` of this repository (``cargo build`` first;
``cargo test --test python_package`` sets ``PORTCULLIS_BIN``). Missing tools
fail the tests rather than skip them.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
TESTS = Path(__file__).resolve().parent
PASSWORD = "correct horse battery"
AUDIENCE = "shop"
START_DEADLINE = 30.0


def portcullis_binary() -> Path:
    candidates = []
    if os.environ.get("PORTCULLIS_BIN"):
        candidates.append(Path(os.environ["PORTCULLIS_BIN"]))
    if os.environ.get("CARGO_TARGET_DIR"):
        candidates.append(Path(os.environ["CARGO_TARGET_DIR"]) / "debug" / "portcullis")
    candidates.append(REPO / "target" / "debug" / "portcullis")
    for path in candidates:
        if path.is_file():
            return path
    pytest.fail(f"no portcullis binary in {[str(c) for c in candidates]}: run `cargo build`")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eventually(check: Callable[[], bool], deadline: float = 10.0, what: str = "") -> None:
    """Polls ``check`` until it is true, failing after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.05)
    pytest.fail(f"not within {deadline}s: {what}")


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def cookie(self, name: str) -> str | None:
        """``name=value`` of a Set-Cookie for ``name``."""
        for k, v in self.headers:
            if k.lower() == "set-cookie" and v.startswith(f"{name}="):
                return v.split(";", 1)[0]
        return None

    def json(self) -> dict:
        return json.loads(self.body)


def request(
    method: str,
    url: str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes | None = None,
) -> Reply:
    """One HTTP/1.1 exchange, redirects not followed; repeated headers kept."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.putrequest(method, parts.path + (f"?{parts.query}" if parts.query else ""))
        for name, value in headers or []:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return Reply(response.status, response.getheaders(), response.read())
    finally:
        conn.close()


class Process:
    """A child process, stopped at teardown; its output goes to a log file."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._out = open(log, "wb")
        self.proc = subprocess.Popen(
            args, stdout=self._out, stderr=subprocess.STDOUT, env=env, cwd=TESTS
        )

    def wait_listening(self, port: int) -> None:
        def up() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.proc.args[0]} exited: {self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        eventually(up, START_DEADLINE, f"{self.proc.args} listening on {port}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


class Stack:
    """portcullis on ``proxy_url`` in front of tests/shop_app.py on ``app_url``."""

    def __init__(self, tmp: Path, binary: Path, users: str) -> None:
        self.tmp = tmp
        self.binary = binary
        self.proxy_port = free_port()
        self.app_port = free_port()
        self.proxy_url = f"http://127.0.0.1:{self.proxy_port}"
        self.app_url = f"http://127.0.0.1:{self.app_port}"
        self.jwks_url = f"{self.proxy_url}/auth/jwks.json"
        (tmp / "users.toml").write_text(users)
        self.config = tmp / "proxy.toml"
        self.write_config("assertion-ed25519.key")
        env = dict(os.environ)
        env.update(
            PORTCULLIS_JWKS_URL=self.jwks_url,
            PORTCULLIS_ASSERTION_AUDIENCE=AUDIENCE,
        )
        env.pop("PORTCULLIS_TRUST_HEADERS", None)
        self.app = Process(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(TESTS), "shop_app:app",
             "--host", "127.0.0.1", "--port", str(self.app_port)],
            tmp / "uvicorn.log",
            env,
        )
        self.proxy = Process(
            [str(binary), "serve", "--config", str(self.config)], tmp / "portcullis.log"
        )
        self.app.wait_listening(self.app_port)
        self.proxy.wait_listening(self.proxy_port)

    def write_config(self, key: str) -> None:
        self.config.write_text(
            f"""
[server]
listen = "127.0.0.1:{self.proxy_port}"
public_url = "http://127.0.0.1:{self.proxy_port}"
[admin]
listen = ""
[upstream]
url = "http://127.0.0.1:{self.app_port}"
[upstream.assertion]
algorithm = "EdDSA"
key = "{FIXTURES / key}"
audience = "{AUDIENCE}"
[credentials.file]
path = "{self.tmp / 'users.toml'}"
[[route]]
path = "/public/**"
access = "public"
[log]
format = "json"
"""
        )

    def reload(self, key: str) -> None:
        """Rotates the assertion key: new config, then SIGHUP."""
        self.write_config(key)
        self.proxy.proc.send_signal(signal.SIGHUP)

    def login(self, username: str) -> str:
        """Signs in with the form; returns the session cookie ``name=value``."""
        page = request("GET", f"{self.proxy_url}/auth/login")
        csrf_cookie = page.cookie("portcullis-csrf")
        match = re.search(rb'name="csrf_token" value="([^"]+)"', page.body)
        assert csrf_cookie and match, page.body
        form = urllib.parse.urlencode(
            {"username": username, "password": PASSWORD, "csrf_token": match[1].decode(), "next": "/"}
        ).encode()
        reply = request(
            "POST",
            f"{self.proxy_url}/auth/login",
            [("Content-Type", "application/x-www-form-urlencoded"), ("Cookie", csrf_cookie)],
            form,
        )
        session = reply.cookie("portcullis")
        assert reply.status == 303 and session, (reply.status, reply.body)
        return session

    def stop(self) -> None:
        self.proxy.stop()
        self.app.stop()


@pytest.fixture(scope="session")
def binary() -> Path:
    return portcullis_binary()


@pytest.fixture(scope="session")
def users(binary: Path) -> str:
    """demo (id 1, patient) and admin (id 2, admin + patient); the hash is
    made by the binary itself."""
    hashed = subprocess.run(
        [str(binary), "hash-password"], input=PASSWORD, capture_output=True, text=True, check=True
    ).stdout.strip()
    return f"""
[[user]]
id = "1"
username = "demo"
email = "demo@example.com"
password_hash = "{hashed}"
roles = ["patient"]

[[user]]
id = "2"
username = "admin"
email = "admin@example.com"
password_hash = "{hashed}"
roles = ["admin", "patient"]
"""


def _stack(tmp: Path, binary: Path, users: str) -> Iterator[Stack]:
    if shutil.which("uvicorn", path=str(Path(sys.executable).parent)) is None:
        pytest.fail(f"uvicorn is not installed for {sys.executable}: pip install './python[test]'")
    stack = Stack(tmp, binary, users)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, binary: Path, users: str) -> Iterator[Stack]:
    """One stack shared by a module's tests that leave it as they found it."""
    yield from _stack(tmp_path_factory.mktemp("stack"), binary, users)


@pytest.fixture
def own_stack(tmp_path: Path, binary: Path, users: str) -> Iterator[Stack]:
    """A stack of its own, for a test that reloads portcullis."""
    yield from _stack(tmp_path, binary, users)
