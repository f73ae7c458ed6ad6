"""Demo upstream app for portcullis.

A small FastAPI app that mirrors the reference deployment's routes (`/`,
`/country/`, `/proceed-to-chat`, `/chat/`), greets the user portcullis
signed in and shows every header it received. `GET /debug/headers`
returns the raw header list as JSON; the end-to-end tests rely on its shape.

The chat keeps its messages per sign-in, keyed by `X-Auth-Session` (the
session's public id, stable for the life of one sign-in and new at the next),
as the Growbal app keys its ChatSession rows: signing in again, or on another
device, starts a new conversation, and a conversation whose id portcullis no
longer sends (the session ended) is dropped after a while.

Without the assertion check it trusts portcullis' `X-Auth-*` headers, so it
must only be reachable through portcullis:
bind it to loopback or a private network, and tell uvicorn to believe
`X-Forwarded-*` from portcullis alone:

    uvicorn main:app --host 127.0.0.1 --port 8000 \
        --proxy-headers --forwarded-allow-ips 127.0.0.1

Who the user is comes from the `portcullis` package (python/ in this
repository, `pip install ./python`): with `PORTCULLIS_JWKS_URL` set (e.g.
http://127.0.0.1:8080/auth/jwks.json) every page requires the signed JWT that
portcullis sends in `X-Auth-Assertion` ([upstream.assertion] in proxy.toml),
verified with the key portcullis publishes, for the audience
`PORTCULLIS_ASSERTION_AUDIENCE` (default "growbal"). Without it the app trusts
the plain `X-Auth-*` headers, and the package logs a loud warning saying so:
fine for the demo, never for production.
"""

from __future__ import annotations

import html
import os
import time
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from portcullis import Portcullis, User

MAX_FORM_BYTES = 16 * 1024
# Per-sign-in chat state, keyed by X-Auth-Session: a stand-in for the
# Growbal app's ChatSession table. Conversations not seen for this long are
# dropped (their session has ended or gone idle in portcullis).
CHAT_IDLE_SECONDS = 30 * 60
MAX_CHATS = 1000
MAX_MESSAGES = 20
COUNTRIES = ["Australia", "Canada", "Germany", "India", "United Arab Emirates", "United Kingdom"]


def _auth() -> Portcullis:
    jwks_url = os.environ.get("PORTCULLIS_JWKS_URL")
    if jwks_url:
        audience = os.environ.get("PORTCULLIS_ASSERTION_AUDIENCE") or "growbal"
        return Portcullis(jwks_url=jwks_url, audience=audience)
    return Portcullis.trusting_headers()


auth = _auth()
CurrentUser = Annotated[User, Depends(auth.user)]

app = FastAPI(title="portcullis demo app", docs_url=None, redoc_url=None)


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


def _page(request: Request, title: str, body: str, user: User) -> HTMLResponse:
    session_line = (
        f"This sign-in: <code>{_e(user.session_id)}</code> (<code>X-Auth-Session</code>)"
        if user.session_id
        else "No <code>X-Auth-Session</code> header"
    )
    greeting = f"Hello, <strong>{_e(user.email or user.name or user.id)}</strong> (user id {_e(user.id)})"
    if auth.verifies:
        assertion = f"verified with portcullis' published key (request {_e(user.request_id)})"
    else:
        assertion = "not checked: trusting plain X-Auth-* headers (PORTCULLIS_JWKS_URL unset)"
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
<p>Roles: {_e(", ".join(user.roles) or "none")}</p>
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
def home(request: Request, user: CurrentUser) -> HTMLResponse:
    body = '<p>Welcome. <a href="/country/">Choose your country</a> to start a chat.</p>'
    return _page(request, "Home", body, user)


@app.get("/country/", response_class=HTMLResponse)
def country(request: Request, user: CurrentUser) -> HTMLResponse:
    options = "".join(f'<option value="{_e(c)}">{_e(c)}</option>' for c in COUNTRIES)
    body = f"""<form method="post" action="/proceed-to-chat">
<label for="country">Country</label>
<select id="country" name="country">{options}</select>
<button type="submit">Proceed to chat</button>
</form>"""
    return _page(request, "Choose a country", body, user)


@app.api_route("/proceed-to-chat", methods=["GET", "POST"])
async def proceed_to_chat(request: Request, user: CurrentUser) -> RedirectResponse:
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
def chat(request: Request, user: CurrentUser) -> HTMLResponse:
    country_name = request.query_params.get("country") or "no country chosen"
    message = request.query_params.get("message")
    reply = f"<p><strong>Echo:</strong> {_e(message)}</p>" if message else ""
    history = ""
    if user.session_id:
        chat = chat_session(user.session_id)
        if message:
            chat.messages = (chat.messages + [message])[-MAX_MESSAGES:]
        items = "".join(f"<li>{_e(m)}</li>" for m in chat.messages)
        history = f"<p>This sign-in's messages:</p><ol>{items}</ol>" if items else ""
    body = f"""<p>Chat about <strong>{_e(country_name)}</strong>.</p>
{reply}
{history}
<form method="get" action="/chat/">
<input type="hidden" name="country" value="{_e(request.query_params.get("country") or "")}">
<input name="message" placeholder="Say something" autofocus>
<button type="submit">Send</button>
</form>"""
    return _page(request, "Chat", body, user)


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
def debug_assertion(user: CurrentUser) -> dict[str, Any]:
    """The verified assertion claims (401 if refused); empty claims when not checked."""
    return {"checked": auth.verifies, "user_id": user.id, "claims": user.claims}


@app.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness for container health checks; never reached through portcullis unauthenticated."""
    return {"status": "ok"}
