"""Demo upstream app for portcullis.

A small FastAPI app that mirrors the reference deployment's routes (`/`,
`/country/`, `/proceed-to-chat`, `/chat/`), greets the user named by the
identity headers portcullis injects (`X-Auth-User`, `X-Auth-Email`,
`X-Auth-Roles`, `X-Auth-Session`) and shows every header it received.
`GET /debug/headers` returns the raw header list as JSON; the end-to-end
tests rely on its shape.

The chat keeps its messages per sign-in, keyed by `X-Auth-Session` (the
session's public id, stable for the life of one sign-in and new at the next),
as the Growbal app keys its ChatSession rows: signing in again, or on another
device, starts a new conversation, and a conversation whose id portcullis no
longer sends (the session ended) is dropped after a while.

The app trusts those headers, so it must only be reachable through portcullis:
bind it to loopback or a private network, and tell uvicorn to believe
`X-Forwarded-*` from portcullis alone:

    uvicorn main:app --host 127.0.0.1 --port 8000 \
        --proxy-headers --forwarded-allow-ips 127.0.0.1

Defence in depth: when `PORTCULLIS_ASSERTION_PUBKEY` names a PEM public key
(Ed25519, RSA or EC P-256), every page also requires the signed JWT that
portcullis sends in `X-Auth-Assertion` ([upstream.assertion] in proxy.toml),
checks its signature, `exp`, `aud` (`PORTCULLIS_ASSERTION_AUDIENCE`, default
"growbal"), `iss` when `PORTCULLIS_ASSERTION_ISSUER` is set, and that its
`sub` is the `X-Auth-User` received. That needs PyJWT with its crypto extra
(`pip install "pyjwt[crypto]"`); without the variable the check is off and
PyJWT is never imported.
"""

from __future__ import annotations

import html
import logging
import os
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

# uvicorn configures this logger, so messages show up in its output.
log = logging.getLogger("uvicorn.error")

ASSERTION_HEADER = "x-auth-assertion"
ASSERTION_LEEWAY_SECONDS = 10
MAX_FORM_BYTES = 16 * 1024
# Per-sign-in chat state, keyed by X-Auth-Session: a stand-in for the
# Growbal app's ChatSession table. Conversations not seen for this long are
# dropped (their session has ended or gone idle in portcullis).
CHAT_IDLE_SECONDS = 30 * 60
MAX_CHATS = 1000
MAX_MESSAGES = 20
COUNTRIES = ["Australia", "Canada", "Germany", "India", "United Arab Emirates", "United Kingdom"]


# --- signed assertion -------------------------------------------------------


@dataclass(frozen=True)
class AssertionVerifier:
    """A loaded public key and the checks every assertion must pass."""

    key: Any
    algorithm: str
    audience: str
    issuer: str | None

    def verify(self, token: str) -> dict[str, Any]:
        import jwt  # lazy: only needed when the check is configured

        options = {"require": ["exp", "aud", "sub"] + (["iss"] if self.issuer else [])}
        return jwt.decode(
            token,
            self.key,
            algorithms=[self.algorithm],  # fixed by the key type, never by the token
            audience=self.audience,
            issuer=self.issuer,
            leeway=ASSERTION_LEEWAY_SECONDS,
            options=options,
        )


@lru_cache(maxsize=4)
def _load_verifier(key_path: str, audience: str, issuer: str | None) -> AssertionVerifier:
    try:
        import jwt  # noqa: F401  (fail now, not at the first request)
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "PORTCULLIS_ASSERTION_PUBKEY is set but PyJWT with its crypto extra is not "
            'installed: pip install "pyjwt[crypto]"'
        ) from exc

    with open(key_path, "rb") as f:
        key = load_pem_public_key(f.read())
    if isinstance(key, ed25519.Ed25519PublicKey):
        algorithm = "EdDSA"
    elif isinstance(key, rsa.RSAPublicKey):
        algorithm = "RS256"
    elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
        algorithm = "ES256"
    else:
        raise RuntimeError(f"{key_path}: unsupported assertion key type {type(key).__name__}")
    return AssertionVerifier(key=key, algorithm=algorithm, audience=audience, issuer=issuer)


def assertion_verifier() -> AssertionVerifier | None:
    """The configured verifier, or None when the check is off."""
    key_path = os.environ.get("PORTCULLIS_ASSERTION_PUBKEY")
    if not key_path:
        return None
    audience = os.environ.get("PORTCULLIS_ASSERTION_AUDIENCE") or "growbal"
    issuer = os.environ.get("PORTCULLIS_ASSERTION_ISSUER") or None
    return _load_verifier(key_path, audience, issuer)


def verify_assertion(request: Request) -> dict[str, Any] | None:
    """FastAPI dependency: the verified assertion claims, or None when the check is off.

    Answers 401 when the check is on and the header is missing, repeated,
    invalid, expired, for another audience, or for another user than
    `X-Auth-User`.
    """
    verifier = assertion_verifier()
    if verifier is None:
        return None
    import jwt

    tokens = request.headers.getlist(ASSERTION_HEADER)
    if len(tokens) != 1:
        raise HTTPException(status_code=401, detail="missing or repeated identity assertion")
    try:
        claims = verifier.verify(tokens[0])
    except jwt.InvalidTokenError as exc:
        log.warning("identity assertion refused: %s", exc)
        raise HTTPException(status_code=401, detail="invalid identity assertion") from None
    if str(claims.get("sub")) != request.headers.get("x-auth-user"):
        log.warning("identity assertion refused: sub does not match X-Auth-User")
        raise HTTPException(status_code=401, detail="identity assertion does not match user")
    return claims


Assertion = Annotated[dict[str, Any] | None, Depends(verify_assertion)]


@asynccontextmanager
async def lifespan(_app: FastAPI):
    # A misconfigured check stops the app at start instead of failing open later.
    verifier = assertion_verifier()
    if verifier is not None:
        log.info("verifying %s assertions (audience %r)", verifier.algorithm, verifier.audience)
    yield


app = FastAPI(title="portcullis demo app", lifespan=lifespan, docs_url=None, redoc_url=None)


# --- per-sign-in state -------------------------------------------------------


@dataclass
class ChatSession:
    """One sign-in's conversation: what the Growbal app stores as a row."""

    messages: list[str]
    last_seen: float


CHATS: dict[str, ChatSession] = {}


def chat_session(session_id: str) -> ChatSession:
    """The conversation of this sign-in, created at its first request.

    Rows whose id has not been seen for CHAT_IDLE_SECONDS are removed first:
    portcullis stops sending an id when its session ends (sign-out, the
    account page, `sessions revoke`, the idle timeout), so an unseen id is a
    finished conversation. A real app runs the same clean-up as a periodic
    `DELETE ... WHERE last_seen < now() - interval`.
    """
    now = time.monotonic()
    for key in [k for k, c in CHATS.items() if now - c.last_seen > CHAT_IDLE_SECONDS]:
        del CHATS[key]
    chat = CHATS.get(session_id)
    if chat is None:
        if len(CHATS) >= MAX_CHATS:
            del CHATS[min(CHATS, key=lambda k: CHATS[k].last_seen)]
        chat = CHATS[session_id] = ChatSession(messages=[], last_seen=now)
    chat.last_seen = now
    return chat


# --- pages ------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _page(request: Request, title: str, body: str, claims: dict[str, Any] | None) -> HTMLResponse:
    user = request.headers.get("x-auth-user")
    email = request.headers.get("x-auth-email")
    roles = [r.strip() for r in (request.headers.get("x-auth-roles") or "").split(",") if r.strip()]
    session = request.headers.get("x-auth-session")
    greeting = (
        f"Hello, <strong>{_e(email or user)}</strong> (user id {_e(user)})"
        if user
        else "Hello, anonymous visitor (no <code>X-Auth-User</code> header)"
    )
    session_line = (
        f"This sign-in: <code>{_e(session)}</code> (<code>X-Auth-Session</code>)"
        if session
        else "No <code>X-Auth-Session</code> header"
    )
    if assertion_verifier() is None:
        assertion = "not checked (PORTCULLIS_ASSERTION_PUBKEY unset)"
    else:
        assertion = f"verified, expires at {_e(claims.get('exp') if claims else '?')}"
    rows = "".join(
        f"<tr><td><code>{_e(name.decode('latin-1'))}</code></td>"
        f"<td><code>{_e(value.decode('latin-1'))}</code></td></tr>"
        for name, value in request.scope["headers"]
    )
    client = request.client.host if request.client else "?"
    doc = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; }}
nav a {{ margin-right: 1rem; }}
table {{ border-collapse: collapse; width: 100%; font-size: .9rem; }}
td {{ border: 1px solid #ccc; padding: .25rem .5rem; vertical-align: top; word-break: break-all; }}
.identity {{ background: #f4f6f8; padding: .75rem 1rem; border-radius: .5rem; }}
</style>
</head>
<body>
<nav><a href="/">Home</a><a href="/country/">Country</a><a href="/chat/">Chat</a>
<a href="/auth/account">Your account</a><a href="/auth/logout">Sign out</a></nav>
<h1>{_e(title)}</h1>
<div class="identity">
<p>{greeting}</p>
<p>Roles: {_e(", ".join(roles) or "none")}</p>
<p>{session_line}</p>
<p>Signed assertion: {assertion}</p>
</div>
{body}
<h2>Request headers received</h2>
<p>Path <code>{_e(request.url.path)}</code>, client <code>{_e(client)}</code></p>
<table>{rows}</table>
</body>
</html>
"""
    return HTMLResponse(doc, headers={"Cache-Control": "no-store"})


@app.get("/", response_class=HTMLResponse)
def home(request: Request, claims: Assertion) -> HTMLResponse:
    body = '<p>Welcome. <a href="/country/">Choose your country</a> to start a chat.</p>'
    return _page(request, "Home", body, claims)


@app.get("/country/", response_class=HTMLResponse)
def country(request: Request, claims: Assertion) -> HTMLResponse:
    options = "".join(f'<option value="{_e(c)}">{_e(c)}</option>' for c in COUNTRIES)
    body = f"""<form method="post" action="/proceed-to-chat">
<label for="country">Country</label>
<select id="country" name="country">{options}</select>
<button type="submit">Proceed to chat</button>
</form>"""
    return _page(request, "Choose a country", body, claims)


@app.api_route("/proceed-to-chat", methods=["GET", "POST"])
async def proceed_to_chat(request: Request, claims: Assertion) -> RedirectResponse:
    country_name = request.query_params.get("country", "")
    if request.method == "POST":
        raw = await request.body()
        if len(raw) > MAX_FORM_BYTES:
            raise HTTPException(status_code=413, detail="form too large")
        form = parse_qs(raw.decode("utf-8", "replace"))
        country_name = (form.get("country") or [""])[0]
    target = "/chat/"
    if country_name:
        target += "?" + urlencode({"country": country_name})
    # Relative Location: correct behind any proxy, whatever Host it forwards.
    return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})


@app.get("/chat/", response_class=HTMLResponse)
def chat(request: Request, claims: Assertion) -> HTMLResponse:
    country_name = request.query_params.get("country") or "no country chosen"
    message = request.query_params.get("message")
    session = request.headers.get("x-auth-session")
    history = ""
    if session:
        chat = chat_session(session)
        if message:
            chat.messages = (chat.messages + [message])[-MAX_MESSAGES:]
        items = "".join(f"<li>{_e(m)}</li>" for m in chat.messages)
        history = f"<p>This sign-in's messages:</p><ol>{items}</ol>" if items else ""
    reply = f"<p><strong>Echo:</strong> {_e(message)}</p>" if message else ""
    body = f"""<p>Chat about <strong>{_e(country_name)}</strong>.</p>
{reply}
{history}
<form method="get" action="/chat/">
<input type="hidden" name="country" value="{_e(request.query_params.get("country") or "")}">
<input name="message" placeholder="Say something" autofocus>
<button type="submit">Send</button>
</form>"""
    return _page(request, "Chat", body, claims)


# --- machine-readable endpoints for tests and operators -----------------------


@app.get("/debug/headers")
def debug_headers(request: Request) -> dict[str, Any]:
    """Exactly what arrived: every header, duplicates and odd spellings included."""
    return {
        "headers": [
            [name.decode("latin-1"), value.decode("latin-1")]
            for name, value in request.scope["headers"]
        ],
        "x_auth_user": request.headers.get("x-auth-user"),
        "x_auth_session": request.headers.get("x-auth-session"),
        "path": request.url.path,
        "client": request.client.host if request.client else None,
    }


@app.get("/debug/assertion")
def debug_assertion(claims: Assertion) -> dict[str, Any]:
    """The verified assertion claims (401 if refused); claims is null when the check is off."""
    return {"checked": assertion_verifier() is not None, "claims": claims}


@app.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness for container health checks; never reached through portcullis unauthenticated."""
    return {"status": "ok"}
