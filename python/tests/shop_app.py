"""The FastAPI app of the end-to-end tests: a handful of handlers protected
with the package, as an app team would write them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

from portcullis import Portcullis, User

auth = Portcullis.from_env()
app = FastAPI()

CurrentUser = Annotated[User, Depends(auth.user)]


def _describe(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "roles": list(user.roles),
        "session_id": user.session_id,
        "request_id": user.request_id,
    }


@app.get("/whoami")
def whoami(user: CurrentUser) -> dict[str, Any]:
    return _describe(user)


@app.get("/reports")
def reports(user: Annotated[User, Depends(auth.require_roles("admin", "auditor"))]) -> dict[str, Any]:
    return _describe(user)


@app.get("/raw-assertion")
def raw_assertion(request: Request, user: CurrentUser) -> dict[str, Any]:
    """The assertion this request carried, for the tampering tests."""
    return {"assertion": request.headers.get(auth.header), "id": user.id}


@app.get("/public/ping")
def ping() -> dict[str, str]:
    return {"pong": "ok"}
