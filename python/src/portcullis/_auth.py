"""FastAPI dependencies that give a handler the user portcullis signed in.

portcullis sends every authenticated request to the app with a short-lived
JWT in ``X-Auth-Assertion`` (``[upstream.assertion]`` in ``proxy.toml``),
signed with a key it publishes at ``{prefix}/jwks.json``. :class:`Portcullis`
verifies that assertion (signature by the published key its ``kid`` names,
``exp``/``nbf`` with a small leeway, ``iss``, ``aud``) and hands the handler
a :class:`User`. A request without a valid assertion gets 401, so an app
reached around portcullis by mistake still refuses strangers.

For development without portcullis' keys, :meth:`Portcullis.trusting_headers`
reads the plain ``X-Auth-*`` headers instead, and says so loudly in the log.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import jwt
from fastapi import HTTPException, Request

from ._jwks import JwksCache, JwksError, UnknownKeyError

log = logging.getLogger("portcullis")

_TRUST_HEADERS_WARNING = (
    "portcullis: TRUSTING PLAIN X-Auth-* HEADERS (development mode). Anyone who can "
    "reach this app directly can claim to be any user with any role. Never run "
    "this in production: configure [upstream.assertion] in proxy.toml and pass "
    "jwks_url instead."
)


@dataclass(frozen=True)
class User:
    """The signed-in user of a request, as portcullis authenticated it."""

    id: str
    """The user id (the assertion's ``sub``; ``X-Auth-User``)."""
    email: str
    """The user's email (may be empty if the credential store has none)."""
    roles: tuple[str, ...]
    """The user's roles, as the credential store lists them."""
    name: str = ""
    """The username the user signed in with (the assertion's ``name``)."""
    session_id: str | None = None
    """The portcullis session (``X-Auth-Session``) when portcullis sends one;
    ``None`` for bearer-token requests or when the header is not configured."""
    request_id: str | None = None
    """portcullis' request id (the assertion's ``jti``), to match its logs."""
    claims: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Every verified claim, for anything not covered above (empty in
    header mode)."""

    def has_role(self, *roles: str) -> bool:
        """True if the user holds at least one of ``roles``."""
        return any(role in self.roles for role in roles)


class Portcullis:
    """Verifies portcullis' assertions; its methods are FastAPI dependencies.

    Example::

        auth = Portcullis(jwks_url="http://portcullis:8080/auth/jwks.json", audience="shop")

        @app.get("/orders")
        def orders(user: Annotated[User, Depends(auth.user)]) -> list[Order]: ...

        @app.delete("/orders/{id}")
        def cancel(id: int, user: Annotated[User, Depends(auth.require_roles("admin"))]): ...
    """

    def __init__(
        self,
        *,
        jwks_url: str,
        audience: str,
        issuer: str = "portcullis",
        header: str = "X-Auth-Assertion",
        session_header: str = "X-Auth-Session",
        leeway: float = 10.0,
        jwks_max_age: float = 300.0,
        jwks_timeout: float = 5.0,
    ) -> None:
        """Args:
        jwks_url: where portcullis publishes its keys, ``{portcullis}/auth/jwks.json``
            (``login.prefix`` + ``/jwks.json``), as the app reaches it.
        audience: ``upstream.assertion.audience`` in ``proxy.toml``.
        issuer: the ``iss`` portcullis writes (always ``"portcullis"``).
        header: ``upstream.assertion.header``.
        session_header: the header carrying the session id, if portcullis sends it.
        leeway: seconds of clock difference allowed on ``exp`` and ``nbf``.
        jwks_max_age: seconds the fetched key set is used before refetching;
            a ``kid`` not in the set refetches at once (key rotation).
        jwks_timeout: seconds one fetch of the key set may take.
        """
        if not audience:
            raise ValueError("audience must be upstream.assertion.audience of proxy.toml")
        self.audience = audience
        self.issuer = issuer
        self.header = header
        self.session_header = session_header
        self.leeway = leeway
        self.jwks: JwksCache | None = JwksCache(
            jwks_url, max_age=jwks_max_age, timeout=jwks_timeout
        )
        self._user_header = "X-Auth-User"
        self._email_header = "X-Auth-Email"
        self._roles_header = "X-Auth-Roles"
        self._warned_on_request = False

    @classmethod
    def trusting_headers(
        cls,
        *,
        user_header: str = "X-Auth-User",
        email_header: str = "X-Auth-Email",
        roles_header: str = "X-Auth-Roles",
        session_header: str = "X-Auth-Session",
    ) -> Portcullis:
        """Development mode: the user comes from the plain identity headers.

        Nothing is verified, so anyone who reaches the app directly can claim
        any identity: a warning is logged (and issued as a ``RuntimeWarning``)
        when this is built and again at the first request it serves.
        """
        self = cls.__new__(cls)
        self.audience = ""
        self.issuer = ""
        self.header = ""
        self.session_header = session_header
        self.leeway = 0.0
        self.jwks = None
        self._user_header = user_header
        self._email_header = email_header
        self._roles_header = roles_header
        self._warned_on_request = False
        log.warning(_TRUST_HEADERS_WARNING)
        warnings.warn(_TRUST_HEADERS_WARNING, RuntimeWarning, stacklevel=2)
        return self

    @classmethod
    def from_env(cls) -> Portcullis:
        """Built from the environment, for twelve-factor deployments.

        ``PORTCULLIS_JWKS_URL`` and ``PORTCULLIS_ASSERTION_AUDIENCE`` (and
        optionally ``PORTCULLIS_ASSERTION_HEADER``) verify assertions;
        ``PORTCULLIS_TRUST_HEADERS=1`` instead selects :meth:`trusting_headers`.
        With neither, this raises rather than guess.
        """
        url = os.environ.get("PORTCULLIS_JWKS_URL", "")
        if url:
            return cls(
                jwks_url=url,
                audience=os.environ.get("PORTCULLIS_ASSERTION_AUDIENCE", ""),
                header=os.environ.get("PORTCULLIS_ASSERTION_HEADER") or "X-Auth-Assertion",
            )
        if os.environ.get("PORTCULLIS_TRUST_HEADERS") == "1":
            return cls.trusting_headers()
        raise RuntimeError(
            "set PORTCULLIS_JWKS_URL (and PORTCULLIS_ASSERTION_AUDIENCE) to verify "
            "portcullis' assertions, or PORTCULLIS_TRUST_HEADERS=1 for development"
        )

    @property
    def verifies(self) -> bool:
        """False in the development mode of :meth:`trusting_headers`."""
        return self.jwks is not None

    def user(self, request: Request) -> User:
        """FastAPI dependency: the signed-in user, or 401.

        Synchronous on purpose: FastAPI runs it in its thread pool, so an
        occasional fetch of the key set never blocks the event loop.
        """
        if self.jwks is None:
            return self._user_from_headers(request)
        tokens = request.headers.getlist(self.header)
        if len(tokens) != 1:
            raise _unauthenticated("missing or repeated identity assertion")
        claims = self._verify(tokens[0])
        roles = claims.get("roles")
        return User(
            id=str(claims["sub"]),
            email=str(claims.get("email") or ""),
            roles=tuple(str(r) for r in roles) if isinstance(roles, list) else (),
            name=str(claims.get("name") or ""),
            session_id=request.headers.get(self.session_header) or None,
            request_id=str(claims["jti"]) if "jti" in claims else None,
            claims=claims,
        )

    def require_roles(self, *roles: str) -> Callable[[Request], User]:
        """A FastAPI dependency: the signed-in user if they hold at least one
        of ``roles`` (as portcullis' own ``roles = [...]`` rules do), else 403
        (401 if nobody is signed in).
        """
        if not roles:
            raise ValueError("require_roles needs at least one role")

        def dependency(request: Request) -> User:
            user = self.user(request)
            if not user.has_role(*roles):
                raise HTTPException(status_code=403, detail="forbidden")
            return user

        dependency.__name__ = f"require_roles_{'_'.join(roles)}"
        return dependency

    def _verify(self, token: str) -> dict[str, Any]:
        assert self.jwks is not None
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError:
            raise _unauthenticated("malformed identity assertion") from None
        if not isinstance(kid, str):
            raise _unauthenticated("identity assertion names no key")
        try:
            key = self.jwks.key(kid)
        except UnknownKeyError:
            log.warning("identity assertion refused: unknown key %r", kid)
            raise _unauthenticated("identity assertion signed by an unknown key") from None
        except JwksError as exc:
            log.error("cannot verify identity assertions: %s", exc)
            raise HTTPException(status_code=503, detail="identity keys unavailable") from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                # Fixed by the published key, never by the token's header.
                algorithms=[key.algorithm_name],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "nbf", "iat", "iss", "aud", "sub"]},
            )
        except jwt.InvalidTokenError as exc:
            log.warning("identity assertion refused: %s", exc)
            raise _unauthenticated("invalid identity assertion") from None
        if claims.get("typ") != "assertion":
            raise _unauthenticated("not an identity assertion")
        return claims

    def _user_from_headers(self, request: Request) -> User:
        if not self._warned_on_request:
            self._warned_on_request = True
            log.warning(_TRUST_HEADERS_WARNING)
        user_id = request.headers.get(self._user_header)
        if not user_id:
            raise _unauthenticated(f"no {self._user_header} header")
        roles = request.headers.get(self._roles_header) or ""
        return User(
            id=user_id,
            email=request.headers.get(self._email_header) or "",
            roles=tuple(r.strip() for r in roles.split(",") if r.strip()),
            session_id=request.headers.get(self.session_header) or None,
        )


def _unauthenticated(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})
