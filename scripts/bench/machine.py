"""Machine helpers for scripts/bench.sh.

  machine.py split           "LOAD_CPUS PROXY_CPUS": lower and upper half of
                             the cores this process may run on
  machine.py count LIST      number of cores in a taskset list ("0-3,6")
  machine.py model           the CPU model
  machine.py ports N         N free loopback TCP ports
  machine.py hash BIN CPUS   milliseconds of one cost-12 bcrypt hash: the
                             fastest of 5 `BIN hash-password` runs pinned to
                             CPUS, less the fastest start-up (an empty
                             password, refused before hashing); the fastest,
                             as another program on the machine can only make
                             a run slower
"""

import os
import socket
import subprocess
import sys
import time


def cores(spec):
    found = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        found.update(range(int(low), int(high or low) + 1))
    return sorted(found)


def compact(cpus):
    """[0, 1, 2, 5] -> "0-2,5"."""
    parts, start = [], None
    for i, cpu in enumerate(cpus):
        if start is None:
            start = cpu
        if i + 1 == len(cpus) or cpus[i + 1] != cpu + 1:
            parts.append(str(start) if start == cpu else f"{start}-{cpu}")
            start = None
    return ",".join(parts)


def timed(argv, stdin):
    begin = time.perf_counter()
    subprocess.run(argv, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - begin


def main(argv):
    what = argv[1] if len(argv) > 1 else ""
    if what == "split":
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) == 1:
            print(cpus[0], cpus[0])
        else:
            half = len(cpus) // 2
            print(compact(cpus[:half]), compact(cpus[half:]))
    elif what == "count":
        print(len(cores(argv[2])))
    elif what == "model":
        model = "unknown"
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        print(model)
    elif what == "ports":
        socks = []
        for _ in range(int(argv[2])):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        print(" ".join(str(s.getsockname()[1]) for s in socks))
        for s in socks:
            s.close()
    elif what == "hash":
        binary, cpus = argv[2], argv[3]
        runs = int(argv[4]) if len(argv) > 4 else 5
        pinned = ["taskset", "-c", cpus, binary, "hash-password"]
        timed(pinned, b"warm-up\n")
        hashes = [timed(pinned, b"bench-password\n") for _ in range(runs)]
        starts = [timed(pinned, b"\n") for _ in range(runs)]
        print(f"{(min(hashes) - min(starts)) * 1000:.1f}")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
