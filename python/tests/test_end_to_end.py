"""The package against the real binary: portcullis signs, the app verifies
with nothing but the key set portcullis publishes."""

from __future__ import annotations

import base64
import json
import time

import jwt

from conftest import AUDIENCE, FIXTURES, Reply, Stack, eventually, request


def get(stack: Stack, path: str, session: str) -> Reply:
    return request("GET", f"{stack.proxy_url}{path}", [("Cookie", session)])


def direct(stack: Stack, path: str, headers: list[tuple[str, str]]) -> Reply:
    """Straight to the app, around portcullis, as an attacker on its network would."""
    return request("GET", f"{stack.app_url}{path}", headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_the_handler_gets_the_signed_in_user(stack: Stack) -> None:
    session = stack.login("demo")
    reply = get(stack, "/whoami", session)
    assert reply.status == 200, reply.body
    user = reply.json()
    assert (user["id"], user["email"], user["name"], user["roles"]) == (
        "1",
        "demo@example.com",
        "demo",
        ["patient"],
    )
    assert user["request_id"] == reply.header("x-request-id")
    # X-Auth-Session when this portcullis sends it, else None.
    assert user["session_id"] is None or len(user["session_id"]) > 0


def test_require_roles_answers_403_without_one_of_them(stack: Stack) -> None:
    assert get(stack, "/reports", stack.login("demo")).status == 403
    reply = get(stack, "/reports", stack.login("admin"))
    assert reply.status == 200, reply.body
    assert reply.json()["roles"] == ["admin", "patient"]


def test_plain_identity_headers_without_an_assertion_get_401(stack: Stack) -> None:
    forged = [("X-Auth-User", "2"), ("X-Auth-Email", "admin@example.com"), ("X-Auth-Roles", "admin")]
    for path in ["/whoami", "/reports"]:
        reply = direct(stack, path, forged)
        assert reply.status == 401, (path, reply.body)
        assert reply.header("www-authenticate") == "Bearer"
    assert direct(stack, "/public/ping", []).status == 200


def test_a_tampered_or_foreign_assertion_gets_401(stack: Stack) -> None:
    token = get(stack, "/raw-assertion", stack.login("demo")).json()["assertion"]
    # The genuine one is accepted straight away (it is valid for a minute):
    # the signature, not the route to the app, is what counts.
    assert direct(stack, "/whoami", [("X-Auth-Assertion", token)]).status == 200

    header, payload, signature = token.split(".")
    claims = json.loads(unb64(payload))
    kid = json.loads(unb64(header))["kid"]
    promoted = b64(json.dumps({**claims, "sub": "2", "roles": ["admin"]}).encode())
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    other_key = (FIXTURES / "assertion-ed25519-next.key").read_bytes()
    now = int(time.time())
    fresh = {**claims, "sub": "2", "roles": ["admin"], "iat": now, "nbf": now, "exp": now + 60}
    unsigned = f"{b64(json.dumps({'alg': 'none', 'kid': kid}).encode())}.{payload}."
    cases = {
        "payload changed": f"{header}.{promoted}.{signature}",
        "signature changed": f"{header}.{payload}.{flipped}",
        "signed by another key, same kid": jwt.encode(
            fresh, other_key, algorithm="EdDSA", headers={"kid": kid}
        ),
        "alg none": unsigned,
        "another audience": jwt.encode(
            {**fresh, "aud": "other-app"}, other_key, algorithm="EdDSA", headers={"kid": kid}
        ),
        "unknown kid": jwt.encode(fresh, other_key, algorithm="EdDSA", headers={"kid": "nope"}),
        "not a JWT": "garbage",
    }
    for case, forged in cases.items():
        reply = direct(stack, "/reports", [("X-Auth-Assertion", forged)])
        assert reply.status == 401, (case, reply.status, reply.body)
    two = [("X-Auth-Assertion", token), ("X-Auth-Assertion", token)]
    assert direct(stack, "/whoami", two).status == 401, "repeated header"


def test_the_assertion_audience_is_the_configured_one(stack: Stack) -> None:
    token = get(stack, "/raw-assertion", stack.login("demo")).json()["assertion"]
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == AUDIENCE


def test_a_rotated_key_is_picked_up_after_a_reload(own_stack: Stack) -> None:
    stack = own_stack
    session = stack.login("admin")
    assert get(stack, "/whoami", session).status == 200  # the app caches the set
    old = request("GET", stack.jwks_url).json()["keys"][0]["kid"]

    stack.reload("assertion-ed25519-next.key")
    eventually(
        lambda: request("GET", stack.jwks_url).json()["keys"][0]["kid"] != old,
        what="portcullis publishes the new key",
    )
    # The app sees a kid it has not cached and refetches the set (at most
    # once a second, so the first try may still be refused).
    eventually(
        lambda: get(stack, "/whoami", session).status == 200,
        what="the app accepts assertions signed with the new key",
    )
    new = request("GET", stack.jwks_url).json()["keys"][0]["kid"]
    token = get(stack, "/raw-assertion", session).json()["assertion"]
    assert jwt.get_unverified_header(token)["kid"] == new != old
