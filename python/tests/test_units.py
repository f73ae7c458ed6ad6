"""The package's parts without portcullis: the development header mode, the
key set cache, and what an unreachable key set does."""

from __future__ import annotations

import http.server
import json
import logging
import threading
from typing import Iterator

import jwt
import pytest
from fastapi import HTTPException
from starlette.requests import Request

from conftest import FIXTURES, free_port
from portcullis import JwksCache, JwksError, Portcullis, UnknownKeyError, User


def make_request(headers: list[tuple[str, str]]) -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
    }
    return Request(scope)


def test_header_mode_reads_the_identity_headers_and_warns_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="portcullis"):
        with pytest.warns(RuntimeWarning, match="TRUSTING PLAIN X-Auth-\\* HEADERS"):
            auth = Portcullis.trusting_headers()
        assert not auth.verifies
        user = auth.user(
            make_request(
                [
                    ("X-Auth-User", "7"),
                    ("X-Auth-Email", "a@example.com"),
                    ("X-Auth-Roles", "admin, ops"),
                    ("X-Auth-Session", "s-1"),
                ]
            )
        )
    assert user == User(id="7", email="a@example.com", roles=("admin", "ops"), session_id="s-1")
    warnings = [r for r in caplog.records if "Never run this in production" in r.getMessage()]
    assert len(warnings) == 2, "once when built, once at the first request"

    with pytest.raises(HTTPException) as refused:
        auth.user(make_request([]))
    assert refused.value.status_code == 401
    with pytest.raises(HTTPException) as forbidden:
        auth.require_roles("finance")(make_request([("X-Auth-User", "7"), ("X-Auth-Roles", "ops")]))
    assert forbidden.value.status_code == 403
    assert auth.require_roles("ops")(make_request([("X-Auth-User", "7"), ("X-Auth-Roles", "ops")])).id == "7"


def test_from_env_refuses_to_guess(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTCULLIS_JWKS_URL", raising=False)
    monkeypatch.delenv("PORTCULLIS_TRUST_HEADERS", raising=False)
    with pytest.raises(RuntimeError, match="PORTCULLIS_JWKS_URL"):
        Portcullis.from_env()
    monkeypatch.setenv("PORTCULLIS_JWKS_URL", "http://127.0.0.1:1/auth/jwks.json")
    with pytest.raises(ValueError, match="audience"):
        Portcullis.from_env()
    monkeypatch.setenv("PORTCULLIS_ASSERTION_AUDIENCE", "shop")
    assert Portcullis.from_env().verifies


class KeySetServer:
    """Serves ``body`` with ``status`` at any path and counts the fetches."""

    def __init__(self, status: int, body: dict) -> None:
        self.status, self.body, self.fetches = status, body, 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.fetches += 1
                data = json.dumps(outer.body).encode()
                self.send_response(outer.status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/auth/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ed25519_jwk() -> dict:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key((FIXTURES / "assertion-ed25519.key").read_bytes(), None)
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": "k1", "alg": "EdDSA", "use": "sig"}


@pytest.fixture
def key_set(ed25519_jwk: dict) -> Iterator[KeySetServer]:
    server = KeySetServer(200, {"keys": [ed25519_jwk]})
    yield server
    server.close()


def test_the_key_set_is_cached_and_unknown_kids_refetch_at_most_once_a_second(
    key_set: KeySetServer,
) -> None:
    now = [0.0]
    cache = JwksCache(key_set.url, max_age=300, min_refetch_interval=1, clock=lambda: now[0])
    assert cache.key("k1").algorithm_name == "EdDSA"
    assert cache.key("k1") is not None
    assert key_set.fetches == 1
    now[0] = 0.5
    with pytest.raises(UnknownKeyError):
        cache.key("rotated")
    assert key_set.fetches == 1, "within a second of the last fetch"
    now[0] = 2.0
    with pytest.raises(UnknownKeyError):
        cache.key("rotated")
    assert key_set.fetches == 2
    now[0] = 400.0
    cache.key("k1")
    assert key_set.fetches == 3, "refetched once stale"


def test_an_unreachable_key_set_is_503_not_401(key_set: KeySetServer) -> None:
    closed = f"http://127.0.0.1:{free_port()}/auth/jwks.json"
    auth = Portcullis(jwks_url=closed, audience="shop", jwks_timeout=2)
    token = jwt.encode(
        {"sub": "1"},
        (FIXTURES / "assertion-ed25519.key").read_bytes(),
        algorithm="EdDSA",
        headers={"kid": "k1"},
    )
    with pytest.raises(HTTPException) as unavailable:
        auth.user(make_request([("X-Auth-Assertion", token)]))
    assert unavailable.value.status_code == 503

    # A cached key outlives a portcullis restart.
    now = [0.0]
    cache = JwksCache(key_set.url, max_age=1, min_refetch_interval=0, clock=lambda: now[0])
    cache.key("k1")
    key_set.close()
    now[0] = 10.0
    assert cache.key("k1").algorithm_name == "EdDSA"
    with pytest.raises(JwksError):
        cache.key("other")


def test_a_404_key_set_names_the_config_to_fix() -> None:
    server = KeySetServer(404, {"error": "not_found"})
    try:
        with pytest.raises(JwksError, match=r"\[upstream.assertion\] with EdDSA, RS256 or ES256"):
            JwksCache(server.url).key("k1")
    finally:
        server.close()
