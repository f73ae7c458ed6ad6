"""Scenario 4: signed-in GETs at a fixed rate over a few keep-alive
connections, latency of every request measured from the moment it was due
(so a stalled proxy is not hidden by a waiting client); first with the proxy
otherwise idle, then during a storm of browser sign-ins.

Prints "figure value" lines: p50_idle, p99_idle, p50_storm, p99_storm (ms),
logins_per_s, logins, probes. Exits 1 on any unexpected answer.
"""

import argparse
import asyncio

from benchlib import Conn, fail, open_browser, percentile


async def probe(args, duration):
    """Latencies (s) of rate x duration GETs spread over args.conns connections."""
    loop = asyncio.get_running_loop()
    conns = [await Conn(args.host, args.port).open() for _ in range(args.conns)]
    interval = args.conns / args.rate
    start = loop.time() + 0.05
    end = start + duration
    latencies = []
    headers = [("Cookie", args.cookie)] if args.cookie else []

    async def one(i, conn):
        k = 0
        while True:
            due = start + (i / args.conns + k) * interval
            if due >= end:
                return
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            status, _, _ = await conn.request("GET", args.path, headers)
            latencies.append(loop.time() - due)
            if status != 200:
                fail(f"probe GET {args.path} answered {status}, not 200")
            k += 1

    await asyncio.gather(*(one(i, c) for i, c in enumerate(conns)))
    for conn in conns:
        conn.close()
    return latencies


async def storm(args, done, stop):
    """Browser sign-ins on args.storm_conns connections until stop is set;
    the completion time of each success is appended to done."""
    loop = asyncio.get_running_loop()

    async def client(i):
        browser = await open_browser(args, i)
        try:
            while not stop.is_set():
                await browser.sign_in()
                done.append(loop.time())
        finally:
            browser.close()

    tasks = [asyncio.create_task(client(i + 1)) for i in range(args.storm_conns)]
    await stop.wait()
    for task in tasks:
        task.cancel()
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(result, Exception) and not isinstance(result, asyncio.CancelledError):
            fail(f"login storm: {result}")


async def main(args):
    loop = asyncio.get_running_loop()
    idle = await probe(args, args.duration)

    done, stop = [], asyncio.Event()
    storm_task = asyncio.create_task(storm(args, done, stop))
    begin = loop.time()
    during = await probe(args, args.duration)
    end = loop.time()
    stop.set()
    await storm_task

    done = [t for t in done if begin <= t <= end]
    if len(done) < 2:
        fail(f"login storm: {len(done)} sign-ins in {end - begin:.1f} s, too few to measure")
    rate = (len(done) - 1) / (done[-1] - done[0])
    ms = 1000.0
    for name, value in [
        ("p50_idle", percentile(idle, 50) * ms),
        ("p99_idle", percentile(idle, 99) * ms),
        ("p50_storm", percentile(during, 50) * ms),
        ("p99_storm", percentile(during, 99) * ms),
        ("logins_per_s", rate),
        ("logins", len(done)),
        ("probes", len(idle) + len(during)),
    ]:
        print(f"{name} {value:.4f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/app")
    parser.add_argument("--cookie", default="", help='session cookie "name=value"')
    parser.add_argument("--rate", type=float, default=1000.0, help="probe GETs per second")
    parser.add_argument("--conns", type=int, default=10, help="probe connections")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per phase")
    parser.add_argument("--storm-conns", type=int, default=4)
    parser.add_argument(
        "--user", required=True, help='sign-in name; "{i}" becomes the client number (1, 2, ...)'
    )
    parser.add_argument("--password", required=True)
    parser.add_argument("--session-cookie", default="portcullis")
    parser.add_argument("--prefix", default="/auth")
    asyncio.run(main(parser.parse_args()))
