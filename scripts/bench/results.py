"""Results of scripts/bench.sh: one "scenario target figure value" line per
measurement in a tab-separated file; every figure is the median over rounds.

  results.py wrk FILE SCENARIO TARGET WRK_OUTPUT [NON_2XX]
      parse wrk --latency output (latencies converted to ms), append
      req_s, p50, p99, requests; exit 1 on any answer other than 2xx (wrk's
      count of 4xx/5xx, plus NON_2XX counted elsewhere: the proxy's metrics)
  results.py add FILE SCENARIO TARGET     append "figure value" lines from stdin
  results.py get FILE SCENARIO TARGET FIGURE   print the median
  results.py table FILE                   print the final table
"""

import re
import statistics
import sys

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}
NGINX = [("nginx1", "1w"), ("nginx2", "2w")]
PORTCULLIS = ["sqlite", "postgres"]


def to_ms(text):
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"not a wrk latency: {text!r}")
    return float(match.group(1)) * UNITS_MS[match.group(2)]


def parse_wrk(text):
    figures = {}
    for line in text.splitlines():
        words = line.split()
        if line.startswith("Requests/sec:"):
            figures["req_s"] = float(words[1])
        elif len(words) == 2 and words[0] in ("50%", "99%"):
            figures["p" + words[0].rstrip("%")] = to_ms(words[1])
        elif "requests in" in line:
            figures["requests"] = float(words[0])
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            figures["non_2xx"] = float(words[-1])
        elif line.strip().startswith("Socket errors:"):
            figures["socket_errors"] = float(
                sum(int(n) for n in re.findall(r"(\d+)", line.split(":", 1)[1]))
            )
    missing = {"req_s", "p50", "p99", "requests"} - figures.keys()
    if missing:
        raise ValueError(f"wrk output lacks {', '.join(sorted(missing))}")
    return figures


def append(path, scenario, target, figure, value):
    with open(path, "a") as out:
        out.write(f"{scenario}\t{target}\t{figure}\t{value}\n")


def load(path):
    values = {}
    with open(path) as lines:
        for line in lines:
            scenario, target, figure, value = line.rstrip("\n").split("\t", 3)
            values.setdefault((scenario, target, figure), []).append(value)
    return values


def median(values, key):
    found = values.get(key)
    return statistics.median(float(v) for v in found) if found else None


def cmd_wrk(path, scenario, target, output, extra=0):
    with open(output) as f:
        text = f.read()
    figures = parse_wrk(text)
    by_wrk, by_proxy = figures.get("non_2xx", 0), float(extra)
    if by_wrk or by_proxy:
        print(text, file=sys.stderr)
        sys.exit(
            f"!! {scenario} {target}: answers other than 2xx (wrk counted {by_wrk:.0f} 4xx/5xx, "
            f"the proxy's metrics {by_proxy:.0f} non-2xx): not the benchmark it claims to be"
        )
    for figure in ("req_s", "p50", "p99", "requests"):
        append(path, scenario, target, figure, figures[figure])
    errors = figures.get("socket_errors", 0)
    append(path, scenario, target, "socket_errors", errors)
    print(
        f"    {target:<9} {figures['req_s']:>10.0f} req/s   p50 {figures['p50']:8.2f} ms"
        f"   p99 {figures['p99']:8.2f} ms"
        + (f"   !! {errors:.0f} socket errors" if errors else ""),
        flush=True,
    )


def fmt(value, digits):
    return "-" if value is None else f"{value:,.{digits}f}"


def table(path):
    values = load(path)
    meta = {k[2]: v[-1] for k, v in values.items() if k[0] == "meta"}
    rows = []

    def verdicts(check, got):
        marks = []
        for target in PORTCULLIS:
            value = got.get(target)
            marks.append("-" if value is None or check(target, value) is None
                         else ("pass" if check(target, value) else "miss"))
        return "/".join(marks)

    def compare(scenario, title, figure, label, digits, higher, factor, ratio_text):
        got = {t: median(values, (scenario, t, figure)) for t in PORTCULLIS}
        nginx = [(median(values, (scenario, t, figure)), w) for t, w in NGINX]
        nginx = [(v, w) for v, w in nginx if v is not None]
        if not nginx:
            rows.append([title, label, fmt(got["sqlite"], digits), fmt(got["postgres"], digits),
                         "-", "-", "-"])
            return
        best, which = (max if higher else min)(nginx)
        bound = best * factor
        check = (lambda t, v: v >= bound) if higher else (lambda t, v: v <= bound)
        rows.append([
            title, label, fmt(got["sqlite"], digits), fmt(got["postgres"], digits),
            f"{fmt(best, digits)} ({which})",
            f"{'>=' if higher else '<='} {ratio_text} = {fmt(bound, digits)}",
            verdicts(check, got),
        ])

    for scenario, conns in (("s1", meta.get("s1_conns")), ("s2", meta.get("s2_conns"))):
        title = f"{scenario[1]} signed-in GET, {conns} conns"
        compare(scenario, title, "req_s", "req/s", 0, True, 1.0, "1.0x nginx")
        compare(scenario, "", "p99", "p99 ms", 2, False, 1.2, "1.2x nginx")
    compare("s3", f"3 1 MiB GET, {meta.get('s3_conns')} conns", "req_s", "MiB/s", 0, True,
            1.0, "1.0x nginx")

    hash_ms = median(values, ("meta", "-", "hash_ms"))
    cores = float(meta.get("proxy_cores", 1))
    limit = cores * 1000.0 / hash_ms if hash_ms else None
    logins = {t: median(values, ("s4", t, "logins_per_s")) for t in PORTCULLIS}
    idle = {t: median(values, ("s4", t, "p99_idle")) for t in PORTCULLIS}
    storm = {t: median(values, ("s4", t, "p99_storm")) for t in PORTCULLIS}
    title4 = f"4 login storm, cost 12, {meta.get('s4_rate')} req/s probe"
    def of_limit(value):
        if value is None or limit is None:
            return fmt(value, 2)
        return f"{value:.2f} ({100 * value / limit:.1f}%)"

    rows.append([
        title4, "logins/s", of_limit(logins["sqlite"]), of_limit(logins["postgres"]), "-",
        f">= 90% of {fmt(limit, 2)} = {fmt(limit and 0.9 * limit, 2)}",
        verdicts(lambda t, v: None if limit is None else v >= 0.9 * limit, logins),
    ])
    rows.append(["", "p99 ms idle", fmt(idle["sqlite"], 2), fmt(idle["postgres"], 2), "-",
                 "-", "-"])
    rows.append([
        "", "p99 ms storm", fmt(storm["sqlite"], 2), fmt(storm["postgres"], 2), "-",
        "<= 2x idle p99",
        verdicts(lambda t, v: None if idle.get(t) is None else v <= 2 * idle[t], storm),
    ])

    title5 = f"5 {meta.get('s5_signins')} sign-ins, {meta.get('s5_idle')} idle conns"
    compare("s5", title5, "rss_mib", "RSS MiB", 1, False, 1.0, "nginx")
    rows[-1][5] = "<= 64"
    rows[-1][6] = verdicts(lambda t, v: v <= 64, {t: median(values, ("s5", t, "rss_mib"))
                                                  for t in PORTCULLIS})
    hwm = {t: median(values, ("s5", t, "hwm_mib")) for t in PORTCULLIS}
    rows.append(["", "VmHWM MiB", fmt(hwm["sqlite"], 1), fmt(hwm["postgres"], 1), "-", "-", "-"])

    header = ["scenario", "figure", "portcullis (sqlite)", "portcullis (postgres)",
              "best nginx", "target", "pass/miss (sqlite/pg)"]
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    right = {2, 3, 4}
    for row in [header, ["-" * w for w in widths]] + rows:
        print("  ".join(
            str(cell).rjust(widths[i]) if i in right else str(cell).ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip())
    if limit is not None:
        print(f"\nhash-bound limit: {cores:.0f} proxy core(s) / {hash_ms:.1f} ms per cost-12 "
              f"hash (`portcullis hash-password` on those cores, median over the storms) "
              f"= {limit:.2f} sign-ins/s")


def details(path):
    """Every figure of every target, each round's value, for the record."""
    values = load(path)
    for (scenario, target, figure), found in sorted(values.items()):
        if scenario == "meta" or figure in ("requests",):
            continue
        rounds = " ".join(f"{float(v):.2f}" for v in found)
        print(f"  {scenario} {target:<9} {figure:<14} {rounds}")


def main(argv):
    what = argv[1] if len(argv) > 1 else ""
    if what == "wrk" and len(argv) in (6, 7):
        cmd_wrk(argv[2], argv[3], argv[4], argv[5], argv[6] if len(argv) == 7 else 0)
    elif what == "add" and len(argv) == 5:
        for line in sys.stdin:
            words = line.split()
            if len(words) == 2:
                append(argv[2], argv[3], argv[4], words[0], words[1])
    elif what == "meta" and len(argv) == 5:
        append(argv[2], "meta", "-", argv[3], argv[4])
    elif what == "get" and len(argv) == 6:
        print(fmt(median(load(argv[2]), tuple(argv[3:6])), 2).replace(",", ""))
    elif what == "table" and len(argv) == 3:
        table(argv[2])
    elif what == "details" and len(argv) == 3:
        details(argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
