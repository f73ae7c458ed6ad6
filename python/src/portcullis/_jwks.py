"""The key set portcullis publishes at ``{prefix}/jwks.json``, fetched and cached.

Keys are looked up by the ``kid`` an assertion names. A ``kid`` that is not
in the cached set means portcullis rotated its key (a reload): the set is
fetched again at once, but at most once per ``min_refetch_interval`` so that
tokens naming made-up ``kid``s cannot turn the app into a request amplifier.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable

import jwt

log = logging.getLogger("portcullis")


class JwksError(Exception):
    """The key set could not be fetched or read; requests cannot be verified (503)."""


class UnknownKeyError(Exception):
    """The assertion names a ``kid`` that portcullis does not publish (401)."""


class JwksCache:
    """Fetches the JWK set at ``url`` and keeps it ``max_age`` seconds.

    Thread-safe: FastAPI runs the (synchronous) dependencies that use it in
    its thread pool, and only one thread fetches at a time.
    """

    def __init__(
        self,
        url: str,
        *,
        max_age: float = 300.0,
        min_refetch_interval: float = 1.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Args:
        url: ``{portcullis}/auth/jwks.json``, reached from the app (usually
            over the private network, e.g. ``http://portcullis:8080/auth/jwks.json``).
        max_age: seconds a fetched set is used before it is fetched again
            (portcullis sends ``Cache-Control: max-age=300``).
        min_refetch_interval: least seconds between two fetches, whatever
            ``kid``s the tokens name.
        timeout: seconds one fetch may take.
        clock: monotonic seconds; tests pass their own.
        """
        self.url = url
        self.max_age = max_age
        self.min_refetch_interval = min_refetch_interval
        self.timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None

    def key(self, kid: str) -> jwt.PyJWK:
        """The published key named ``kid``.

        Raises:
            UnknownKeyError: portcullis does not publish that key, even after a refetch.
            JwksError: the set cannot be fetched and no cached copy holds ``kid``.
        """
        with self._lock:
            now = self._clock()
            fresh = self._fetched_at is not None and now - self._fetched_at < self.max_age
            if fresh and kid in self._keys:
                return self._keys[kid]
            may_fetch = (
                self._attempted_at is None
                or now - self._attempted_at >= self.min_refetch_interval
            )
            if may_fetch:
                self._attempted_at = now
                try:
                    self._keys = self._fetch()
                    self._fetched_at = now
                except JwksError:
                    if kid not in self._keys:
                        raise
                    # A stale key beats refusing everyone while portcullis restarts.
                    log.warning("portcullis key set unreachable; using the cached copy")
            elif self._fetched_at is None:
                raise JwksError(f"{self.url}: the last fetch failed; retrying shortly")
            if kid in self._keys:
                return self._keys[kid]
            raise UnknownKeyError(f"no key {kid!r} in {self.url}")

    def _fetch(self) -> dict[str, jwt.PyJWK]:
        request = urllib.request.Request(self.url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                document: Any = json.load(response)
        except urllib.error.HTTPError as exc:
            hint = (
                " (portcullis publishes keys only for [upstream.assertion] with "
                "EdDSA, RS256 or ES256)"
                if exc.code == 404
                else ""
            )
            raise JwksError(f"{self.url}: HTTP {exc.code}{hint}") from None
        except (OSError, ValueError) as exc:
            raise JwksError(f"{self.url}: {exc}") from None
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document.get("keys", []) if isinstance(document, dict) else []:
            kid = entry.get("kid") if isinstance(entry, dict) else None
            if not isinstance(kid, str):
                continue
            try:
                keys[kid] = jwt.PyJWK(entry)
            except jwt.PyJWKError as exc:
                log.warning("portcullis key %r skipped: %s", kid, exc)
        if not keys:
            raise JwksError(f"{self.url}: no usable key in the set")
        log.info("portcullis key set fetched: %s", ", ".join(sorted(keys)))
        return keys
