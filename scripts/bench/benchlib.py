"""A minimal HTTP/1.1 client over asyncio streams, and the browser sign-in
of portcullis, for the benchmark helpers (Python 3 standard library only)."""

import asyncio
import re
import sys
import urllib.parse

CSRF_FIELD = re.compile(rb'name="csrf_token" value="([^"]*)"')


class HttpError(Exception):
    pass


class Conn:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, host, port):
        self.host = host
        self.port = port
        self.reader = None
        self.writer = None

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection(
            self.host, self.port, limit=1 << 21
        )
        return self

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    async def request(self, method, path, headers=(), body=b""):
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{name}: {value}" for name, value in headers]
        if body or method == "POST":
            head.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        return await self.response()

    async def response(self):
        """(status, [(lowercase name, value)], body) of the next response."""
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise HttpError(f"not an HTTP response: {lines[0]!r}")
        status = int(parts[1])
        headers = []
        length = None
        chunked = False
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            name = name.strip().lower()
            value = value.strip()
            headers.append((name, value))
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if chunked:
            body = bytearray()
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self._trailers()
                    break
                body += await self.reader.readexactly(size + 2)
                del body[-2:]
            body = bytes(body)
        elif length is not None:
            body = await self.reader.readexactly(length)
        elif status in (204, 304) or status < 200:
            body = b""
        else:
            body = await self.reader.read()
        return status, headers, body

    async def _trailers(self):
        while (await self.reader.readuntil(b"\r\n")) != b"\r\n":
            pass


def set_cookies(headers):
    """{name: value} of the response's Set-Cookie headers."""
    cookies = {}
    for name, value in headers:
        if name == "set-cookie":
            pair = value.split(";", 1)[0]
            cname, _, cvalue = pair.partition("=")
            cookies[cname.strip()] = cvalue.strip()
    return cookies


class Browser:
    """A browser on one connection that signs in with the login form: the
    CSRF cookie and form token are fetched once and reused for every POST."""

    def __init__(self, host, port, user, password, session_cookie):
        self.conn = Conn(host, port)
        self.user = user
        self.password = password
        self.session_cookie = session_cookie
        self.csrf_cookie = None
        self.body = None

    async def open(self, prefix="/auth"):
        await self.conn.open()
        self.prefix = prefix
        status, headers, body = await self.conn.request("GET", f"{prefix}/login")
        if status != 200:
            raise HttpError(f"GET {prefix}/login answered {status}, not 200")
        cookies = set_cookies(headers)
        csrf = [(n, v) for n, v in cookies.items() if n.endswith("-csrf")]
        match = CSRF_FIELD.search(body)
        if not csrf or not match:
            raise HttpError("the sign-in form has no CSRF cookie or csrf_token field")
        self.csrf_cookie = f"{csrf[0][0]}={csrf[0][1]}"
        self.body = urllib.parse.urlencode(
            {
                "username": self.user,
                "password": self.password,
                "csrf_token": match.group(1).decode(),
                "next": "/",
            }
        ).encode()
        return self

    async def sign_in(self):
        """One sign-in: returns "name=value" of the new session cookie;
        raises on anything but a redirect setting it."""
        status, headers, _ = await self.conn.request(
            "POST",
            f"{self.prefix}/login",
            [
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Cookie", self.csrf_cookie),
            ],
            self.body,
        )
        value = set_cookies(headers).get(self.session_cookie)
        if status not in (302, 303) or not value:
            raise HttpError(
                f"sign-in answered {status}"
                + ("" if value else f" without a {self.session_cookie} cookie")
            )
        return f"{self.session_cookie}={value}"

    def close(self):
        self.conn.close()


async def open_browser(args, i):
    """The signed-out browser of sign-in client i (args.user with {i}
    replaced), its sign-in form already loaded."""
    user = args.user.replace("{i}", str(i))
    return await Browser(
        args.host, args.port, user, args.password, args.session_cookie
    ).open(args.prefix)


def percentile(values, q):
    """The q-th percentile (0..100) by nearest rank; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def fail(message):
    print(f"!! {message}", file=sys.stderr, flush=True)
    sys.exit(1)
