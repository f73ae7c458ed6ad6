"""Scenario 5 (and the sign-in burst of the PostgreSQL count): browser
sign-ins on a few connections (one POST each, the CSRF cookie and form token
reused per connection), then many keep-alive connections that each make one
GET (with a session cookie of their own when there were sign-ins) and stay
open, idle, until this process is killed.

Prints "figure value" lines (signins, signins_per_s, idle_conns), then
"ready" once every connection is open and idle. Exits 1 on any unexpected
answer.
"""

import argparse
import asyncio
import sys

from benchlib import Conn, fail, open_browser


async def sign_ins(args):
    loop = asyncio.get_running_loop()
    cookies = []
    left = [args.signins]

    async def client(i):
        browser = await open_browser(args, i)
        try:
            while left[0] > 0:
                left[0] -= 1
                cookie = await browser.sign_in()
                if len(cookies) < max(args.idle, 1):
                    cookies.append(cookie)
        finally:
            browser.close()

    begin = loop.time()
    clients = min(args.conns, args.signins)
    results = await asyncio.gather(*(client(i + 1) for i in range(clients)), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            fail(f"sign-ins: {result}")
    took = loop.time() - begin
    print(f"signins {args.signins}")
    print(f"signins_per_s {args.signins / took:.1f}", flush=True)
    return cookies


async def hold(args, cookies):
    limit = asyncio.Semaphore(args.connect_concurrency)
    conns = []

    async def one(i):
        async with limit:
            conn = await Conn(args.host, args.port).open()
            headers = [("Cookie", cookies[i % len(cookies)])] if cookies else []
            status, _, _ = await conn.request("GET", args.path, headers)
            if status != 200:
                fail(f"GET {args.path} answered {status}, not 200")
            conns.append(conn)

    results = await asyncio.gather(*(one(i) for i in range(args.idle)), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            fail(f"idle connections: {result}")
    return conns


async def main(args):
    cookies = await sign_ins(args) if args.signins > 0 else []
    if args.idle > 0:
        conns = await hold(args, cookies)
        print(f"idle_conns {len(conns)}")
        print("ready", flush=True)
        await asyncio.Event().wait()
    sys.stdout.flush()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/app")
    parser.add_argument("--signins", type=int, default=0)
    parser.add_argument("--conns", type=int, default=16, help="sign-in connections")
    parser.add_argument("--idle", type=int, default=0, help="idle connections to hold")
    parser.add_argument("--connect-concurrency", type=int, default=200)
    parser.add_argument("--user", default="", help='sign-in name; "{i}" becomes the client number')
    parser.add_argument("--password", default="")
    parser.add_argument("--session-cookie", default="portcullis")
    parser.add_argument("--prefix", default="/auth")
    asyncio.run(main(parser.parse_args()))
