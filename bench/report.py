#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Log analysis and the results table for make bench (bench/run.sh).

  report.py ka-start LOG LAUNCH_EPOCH        start-to-ready breakdown
  report.py ka-churn LOG FROM_LINE CHURNLOG  per-change latencies (kube-annex -v)
  report.py kp-syncs LOG                     kube-proxy sync durations
  report.py kp-churn LOG CHURNLOG            per-change latencies (kube-proxy)
  report.py render VALUES MARKDOWN           print the table, write MARKDOWN

LOG lines of kube-annex are "EPOCH.USEC <N>message" (run.sh timestamps
stderr as it arrives). The analysis subcommands print "key value" lines
that run.sh appends to VALUES.
"""
import datetime
import re
import sys
import time


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p * (len(v) - 1))))]


def emit(key, value):
    if value is None:
        return
    if isinstance(value, float):
        print(f"{key} {value:.3f}")
    else:
        print(f"{key} {value}")


def read_ka(path):
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            ts, _, msg = line.rstrip("\n").partition(" ")
            try:
                out.append((float(ts), msg))
            except ValueError:
                continue
    return out


# ---- kube-annex ------------------------------------------------------------

PROGRAMMED = re.compile(r"Programmed (\d+) of (\d+) Services \((\d+) service ports, (\d+) endpoints\) "
                        r"(\d+) ms after start; sync took ([\d.]+) ms")
SYNCED = re.compile(r"Synced in ([\d.]+) ms, event->kernel ([\d.]+) ms(?:, cluster change->kernel ([\d.]+) ms)?")


def ka_start(path, launch):
    launch = float(launch)
    lines = read_ka(path)
    warnings = []
    for ts, msg in lines:
        if msg.startswith(("<3>", "<4>")):
            warnings.append(msg[3:])
        if "Initial list of Services complete" in msg:
            emit("ka_list_services_ms", (ts - launch) * 1000)
        elif "Initial list of endpoints complete" in msg:
            emit("ka_list_endpoints_ms", (ts - launch) * 1000)
        m = PROGRAMMED.search(msg)
        if m:
            emit("ka_ready_reader_ms", (ts - launch) * 1000)
            emit("ka_ready_services", int(m.group(1)))
            emit("ka_ready_services_total", int(m.group(2)))
            emit("ka_ready_endpoints", int(m.group(4)))
            emit("ka_ready_ms", float(m.group(5)))
            emit("ka_first_sync_ms", float(m.group(6)))
            break
    emit("ka_start_warnings", len(warnings))
    if warnings:
        emit("ka_start_warning", warnings[0][:200])
    m = [re.search(r"committed (\d+) keys in (\d+) transactions", msg) for _, msg in lines]
    m = [x for x in m if x]
    if m:
        emit("ka_first_sync_transactions", int(m[0].group(2)))


def ka_churn(path, from_line, churn_log):
    lines = read_ka(path)[int(from_line):]
    syncs, keys = [], None
    for ts, msg in lines:
        k = re.search(r"committed (\d+) keys", msg)
        if k:
            keys = int(k.group(1))
        m = SYNCED.search(msg)
        if m:
            syncs.append((ts, float(m.group(1)), float(m.group(2)),
                          float(m.group(3)) if m.group(3) else None, keys))
            keys = None
    changes = [int(line.split()[1]) / 1e9 for line in open(churn_log) if line.strip()]
    emit("ka_churn_changes", len(changes))
    emit("ka_churn_syncs", len(syncs))
    if not syncs:
        return
    took = [s[1] for s in syncs]
    ev = [s[2] for s in syncs]
    cl = [s[3] for s in syncs if s[3] is not None]
    # Syncs that carried more than one change: the second change arrived
    # before the first was programmed.
    multi = [s for s in syncs if s[4] is not None and s[4] > 1]
    emit("ka_churn_multi", len(multi))
    single = [s[2] for s in syncs if s[4] == 1]
    for name, vals in (("took", took), ("event", ev), ("cluster", cl), ("single", single)):
        if vals:
            emit(f"ka_churn_{name}_p50_ms", pct(vals, 0.5))
            emit(f"ka_churn_{name}_p99_ms", pct(vals, 0.99))
            emit(f"ka_churn_{name}_max_ms", max(vals))
            emit(f"ka_churn_{name}_n", len(vals))
    # API write (the PATCH) -> kernel, from the timestamps of the log
    # lines: the first sync logged after each change (changes are paced
    # wider than the mirroring delay, so each one is its own sync).
    ext, j = [], 0
    for k, t in enumerate(changes):
        while j < len(syncs) and syncs[j][0] < t:
            j += 1
        if j == len(syncs):
            break
        nxt = changes[k + 1] if k + 1 < len(changes) else float("inf")
        if syncs[j][0] < nxt + 1.0:
            ext.append((syncs[j][0] - t) * 1000)
    if ext:
        emit("ka_churn_write_p50_ms", pct(ext, 0.5))
        emit("ka_churn_write_p99_ms", pct(ext, 0.99))
        emit("ka_churn_write_n", len(ext))


# ---- kube-proxy ------------------------------------------------------------

KLOG = re.compile(r"^[IWEF](\d{2})(\d{2}) (\d{2}):(\d{2}):(\d{2})\.(\d{6})\s+\d+ (\S+)\] (.*)$")


def klog_lines(path):
    year = datetime.date.today().year
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            m = KLOG.match(line)
            if not m:
                continue
            mo, d, h, mi, s, us = (int(x) for x in m.groups()[:6])
            t = time.mktime((year, mo, d, h, mi, s, 0, 0, -1)) + us / 1e6
            out.append((t, m.group(7), m.group(8)))
    return out


def parse_duration(s):
    """Go's time.Duration.String(): 7.2s, 13.87ms, 1m2.5s, 950µs."""
    total = 0.0
    for num, unit in re.findall(r"([\d.]+)(h|ms|µs|us|ns|m|s)", s):
        total += float(num) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "µs": 1e-6, "us": 1e-6,
                               "ns": 1e-9}[unit]
    return total


def kp_sync_windows(path):
    """[(start, end, seconds)] of every syncProxyRules run."""
    wins, start = [], None
    for t, _, msg in klog_lines(path):
        if msg.startswith("Syncing iptables rules"):
            start = t
        elif msg.startswith("syncProxyRules took"):
            d = parse_duration(msg.split("took", 1)[1])
            wins.append((start if start is not None else t - d, t, d))
            start = None
    return wins


def kp_syncs(path):
    wins = kp_sync_windows(path)
    emit("kp_syncs", len(wins))
    if wins:
        emit("kp_first_sync_s", wins[0][2])
        emit("kp_first_sync_end", wins[0][1])
    if len(wins) > 1:
        emit("kp_second_sync_s", wins[1][2])


def kp_churn(path, churn_log):
    lines = klog_lines(path)
    changes = [int(line.split()[1]) / 1e9 for line in open(churn_log) if line.strip()]
    if not changes:
        return
    wins = kp_sync_windows(path)
    # Slice update events as kube-proxy's config handler saw them
    # (--vmodule=config=4), from the first change on.
    events = [t for t, _, msg in lines
              if "OnEndpointSliceUpdate" in msg and t >= changes[0] - 0.5]
    emit("kp_churn_changes", len(changes))
    emit("kp_churn_events", len(events))
    ev_lat, write_lat, used = [], [], set()
    for k, e in enumerate(events):
        w = next((w for w in wins if w[0] > e), None)  # first sync started after the event
        if w is None:
            continue
        used.add(w)
        ev_lat.append(w[1] - e)
        if k < len(changes):
            write_lat.append(w[1] - changes[k])
    churn_syncs = [w for w in wins if w[0] >= changes[0] - 0.5]
    emit("kp_churn_syncs", len(churn_syncs))
    if churn_syncs:
        d = [w[2] for w in churn_syncs]
        emit("kp_churn_sync_p50_s", pct(d, 0.5))
        emit("kp_churn_sync_max_s", max(d))
    if ev_lat:
        emit("kp_churn_event_p50_s", pct(ev_lat, 0.5))
        emit("kp_churn_event_p99_s", pct(ev_lat, 0.99))
        emit("kp_churn_event_n", len(ev_lat))
    if write_lat:
        emit("kp_churn_write_p50_s", pct(write_lat, 0.5))
        emit("kp_churn_write_p99_s", pct(write_lat, 0.99))


# ---- the table -------------------------------------------------------------

def load_values(path):
    v = {}
    for line in open(path):
        k, _, val = line.rstrip("\n").partition(" ")
        if k:
            v[k] = val
    return v


class V:
    def __init__(self, d):
        self.d = d

    def f(self, k):
        try:
            return float(self.d[k])
        except (KeyError, ValueError):
            return None

    def s(self, k, default="n/a"):
        return self.d.get(k, default)


def fmt_ms(x):
    if x is None:
        return "n/a"
    if x >= 10000:
        return f"{x / 1000:.1f} s"
    if x >= 1000:
        return f"{x / 1000:.2f} s"
    if x >= 100:
        return f"{x:.0f} ms"
    if x >= 10:
        return f"{x:.1f} ms"
    if x >= 1:
        return f"{x:.2f} ms"
    return f"{x * 1000:.0f} µs"


def fmt_s(x):
    return fmt_ms(x * 1000) if x is not None else "n/a"


def fmt_x(x):
    return f"{x:.0f}×" if x is not None and x >= 10 else (f"{x:.1f}×" if x is not None else "n/a")


def ratio(a, b):
    return a / b if a is not None and b else None


def render(values_path, md_path):
    v = V(load_values(values_path))
    N = int(v.f("services") or 0)
    sizes = [int(x) for x in v.s("cold_sizes", "").split()]
    rows = []  # (section, what, value, note)

    def row(sec, what, val, note=""):
        rows.append((sec, what, val, note))

    sec = "1. Cold programming, model in memory → committed (fresh netns)"
    for n in sizes:
        tag = f"{n // 1000}k×{int(v.f('endpoints') or 10)}"
        ka = v.f(f"ka_cold_{n}_ms")
        row(sec, f"{tag}: kube-annex nft module (libnftnl batch)", fmt_ms(ka),
            f"median of {v.s(f'ka_cold_{n}_reps')}: {v.s(f'ka_cold_{n}_all')} ms; "
            f"kernel (sys) {fmt_ms(v.f(f'ka_cold_{n}_sys_ms'))}, staging {fmt_ms(v.f(f'ka_cold_{n}_stage_ms'))}")
        for style, label in (("136", "kube-proxy 1.36 layout"), ("135", "kube-proxy ≤1.35 layout"),
                             ("ka", "kube-annex's own listing")):
            t = v.f(f"nftf_{style}_{n}_ms")
            note = ""
            if style != "ka":
                note = f"kube-annex is {fmt_x(ratio(t, ka))} faster"
            else:
                note = "same ruleset through nft's parser: the cost of text"
            row(sec, f"{tag}: nft -f, {label}", fmt_ms(t), note)
        row(sec, f"{tag}: kube-annex, 1 endpoint change (stage+commit)",
            f"p50 {fmt_ms(v.f(f'ka_change_{n}_p50_ms'))} / p99 {fmt_ms(v.f(f'ka_change_{n}_p99_ms'))}",
            f"{v.s(f'ka_change_{n}_count')} changes, max {fmt_ms(v.f(f'ka_change_{n}_max_ms'))}")
        row(sec, f"{tag}: kube-annex, restart: first commit",
            fmt_ms(v.f(f"ka_restart_{n}_ms")), "new handle, the same table already in the kernel (adopted)")
        row(sec, f"{tag}: kube-annex, restart: replace the full table",
            fmt_ms(v.f(f"ka_replace_{n}_ms")), "after nft_reset(): one transaction replaces the table")

    sec = f"2. Start to ready against the real API server ({N} Services × {v.s('endpoints')})"
    row(sec, "kube-annex: start → \"Programmed\"", fmt_ms(v.f("ka_ready_ms")),
        f"{v.s('ka_ready_services')} of {v.s('ka_ready_services_total')} Services, "
        f"{v.s('ka_ready_endpoints')} endpoints; launch → log line {fmt_ms(v.f('ka_ready_reader_ms'))}")
    row(sec, "  initial list of Services complete", fmt_ms(v.f("ka_list_services_ms")),
        "after launch (log line arrival)")
    row(sec, "  initial list of endpoints complete", fmt_ms(v.f("ka_list_endpoints_ms")),
        "after launch (log line arrival)")
    row(sec, "  first sync (program)", fmt_ms(v.f("ka_first_sync_ms")),
        f"{v.s('ka_first_sync_transactions', '?')} transactions")
    row(sec, "  restorations after start (self-heal)", v.s("ka_restorations", "n/a"),
        "\"restoring them\" log lines until idle")
    row(sec, "  warnings and errors logged until ready", v.s("ka_start_warnings", "n/a"),
        v.s("ka_start_warning", ""))
    row(sec, "kube-proxy 1.20 iptables: start → first sync done", fmt_s(v.f("kp_ready_s")),
        f"{v.s('kp_iptables')} iptables")
    row(sec, "  first syncProxyRules", fmt_s(v.f("kp_first_sync_s")),
        f"second (burst) sync {fmt_s(v.f('kp_second_sync_s'))}; "
        f"metrics: {v.s('kp_metric_sync_count')} syncs, {fmt_s(v.f('kp_metric_sync_sum_s'))} total")
    row(sec, "  iptables-save lines (nat+filter)", v.s("kp_rules"), "")

    sec = "3. One endpoint change with all Services present (through the API server)"
    row(sec, "kube-annex: API event → kernel commit",
        f"p50 {fmt_ms(v.f('ka_churn_event_p50_ms'))} / p99 {fmt_ms(v.f('ka_churn_event_p99_ms'))}",
        f"{v.s('ka_churn_syncs')} syncs for {v.s('ka_churn_changes')} changes; max "
        f"{fmt_ms(v.f('ka_churn_event_max_ms'))}; {v.s('ka_churn_multi')} syncs carried >1 change "
        f"(p99 of the one-change syncs: {fmt_ms(v.f('ka_churn_single_p99_ms'))})")
    row(sec, "kube-annex: sync duration",
        f"p50 {fmt_ms(v.f('ka_churn_took_p50_ms'))} / p99 {fmt_ms(v.f('ka_churn_took_p99_ms'))}", "")
    if v.f("ka_churn_cluster_p50_ms") is not None:
        row(sec, "kube-annex: cluster change (trigger-time) → kernel",
            f"p50 {fmt_ms(v.f('ka_churn_cluster_p50_ms'))} / p99 {fmt_ms(v.f('ka_churn_cluster_p99_ms'))}", "")
    row(sec, "kube-annex: Endpoints PATCH → kernel",
        f"p50 {fmt_ms(v.f('ka_churn_write_p50_ms'))} / p99 {fmt_ms(v.f('ka_churn_write_p99_ms'))}",
        "includes the mirroring controller and the API server")
    row(sec, "kube-proxy: API event → rules restored",
        f"p50 {fmt_s(v.f('kp_churn_event_p50_s'))} / p99 {fmt_s(v.f('kp_churn_event_p99_s'))}",
        f"{v.s('kp_churn_changes')} changes every {v.s('kp_churn_interval')} s, "
        f"{v.s('kp_churn_syncs')} syncs (p50 {fmt_s(v.f('kp_churn_sync_p50_s'))})")
    row(sec, "kube-proxy: Endpoints PATCH → rules restored",
        f"p50 {fmt_s(v.f('kp_churn_write_p50_s'))} / p99 {fmt_s(v.f('kp_churn_write_p99_s'))}",
        f"network_programming histogram: {v.s('kp_metric_netprog_count', 'n/a')} samples")

    sec = "4. Memory"
    row(sec, "kube-annex VmRSS / VmHWM after ready",
        f"{fmt_mb(v.f('ka_rss_kb'))} / {fmt_mb(v.f('ka_hwm_kb'))}",
        f"VmHWM after the changes {fmt_mb(v.f('ka_hwm_end_kb'))}; with "
        f"{v.s('conn_small_services')} Services: VmRSS {fmt_mb(v.f('ka_small_rss_kb'))}")
    row(sec, "kube-proxy VmRSS / VmHWM", f"{fmt_mb(v.f('kp_rss_kb'))} / {fmt_mb(v.f('kp_hwm_kb'))}",
        "its iptables-restore children not included")

    sec = "5. New connections from the host namespace (HTTP, one connection per request)"
    for st, label in (("1", f"{v.s('conn_small_services')} Services"), ("N", f"{N} Services")):
        for tgt, tl in (("direct", "pod IP direct"), ("cip", "ClusterIP")):
            row(sec, f"{tl}, {label}: connections/s",
                f"{v.f(f'conn_{st}_{tgt}_rate') or 0:,.0f}/s",
                f"median of {v.s('conn_rounds')} × {v.s('conn_seconds')} s at concurrency "
                f"{v.s('conn_concurrency')}: {v.s(f'conn_{st}_{tgt}_rates')}")
            row(sec, f"{tl}, {label}: connect() latency",
                f"p50 {fmt_us(v.f(f'conn_{st}_{tgt}_lat_p50_us'))} / p99 "
                f"{fmt_us(v.f(f'conn_{st}_{tgt}_lat_p99_us'))}",
                "one connection at a time (first packet's round trip)")
    row(sec, f"ClusterIP rate, {N} vs {v.s('conn_small_services')} Services",
        fmt_pct(ratio(v.f("conn_N_cip_vs_direct"), v.f("conn_1_cip_vs_direct"))),
        f"each relative to the pod IP in the same round ({fmt_pct(v.f('conn_N_cip_vs_direct'))} vs "
        f"{fmt_pct(v.f('conn_1_cip_vs_direct'))}); raw medians: "
        f"{fmt_pct(ratio(v.f('conn_N_cip_rate'), v.f('conn_1_cip_rate')))}")

    sec = f"6. CPU when nothing changes ({v.s('idle_seconds')} s idle, {N} Services)"
    row(sec, "kube-annex utime+stime", fmt_ms(v.f("ka_idle_cpu_ms")),
        f"on-CPU {fmt_ms(v.f('ka_idle_sched_ms'))}, {v.s('ka_idle_wakeups')} context switches, "
        f"{v.s('ka_idle_loglines')} log lines")
    row(sec, "kube-proxy utime+stime (+ children)", fmt_ms(v.f("kp_idle_cpu_ms")),
        f"{v.s('kp_idle_syncs', 'n/a')} periodic syncs in the window")

    # Goals
    goals = [
        ("cold programming 10k×10", "≤ 0.5 s", fmt_ms(v.f(f"ka_cold_{N}_ms"))),
        ("vs nft -f of the 1.36-style ruleset", "≥ 20× faster",
         fmt_x(ratio(v.f(f"nftf_136_{N}_ms"), v.f(f"ka_cold_{N}_ms")))),
        ("endpoint change, event → kernel p99", "≤ 5 ms", fmt_ms(v.f("ka_churn_event_p99_ms"))),
        ("resident memory at 10k×10", "≤ 50 MB", fmt_mb(v.f("ka_hwm_end_kb") or v.f("ka_hwm_kb"))),
        ("connection rate 10k vs 1 Service", "≥ 95 %",
         fmt_pct(ratio(v.f("conn_N_cip_vs_direct"), v.f("conn_1_cip_vs_direct"))) +
         " (normalized by the pod IP rate), " +
         fmt_pct(ratio(v.f("conn_N_cip_rate"), v.f("conn_1_cip_rate"))) + " raw"),
        ("CPU when nothing changes", "zero", fmt_ms(v.f("ka_idle_cpu_ms")) + f" in {v.s('idle_seconds')} s"),
    ]
    if N != 10000:
        goals = [(g[0] + f" (run at {N})", g[1], g[2]) for g in goals]

    head = (f"kube-annex make bench — {N} Services × {v.s('endpoints')} endpoints\n"
            f"{v.s('date')}; {v.s('cpu')} × {v.s('cores')} cores; Linux {v.s('kernel')}; "
            f"nftables {v.s('nft')}, libnftnl {v.s('libnftnl')}; kube-annex {v.s('version')}")
    # ---- terminal
    out = [head, ""]
    w = max(len(r[1]) for r in rows) + 2
    cur = None
    for sec, what, val, note in rows:
        if sec != cur:
            out.append(sec)
            cur = sec
        out.append(f"  {what:<{w}} {val:<22} {note}")
    out.append("")
    out.append("Goals (DESIGN.md), measured in this run:")
    for g in goals:
        out.append(f"  {g[0]:<42} goal {g[1]:<14} measured {g[2]}")
    out.append("")
    out.append(f"make bench took {fmt_s(v.f('runtime_s'))}; load average before/after: "
               f"{v.s('load_before')} / {v.s('load_after')}")
    print("\n".join(out))

    # ---- markdown
    md = ["# make bench results", "",
          f"Generated by `{v.s('command')}` (bench/run.sh). Reproduce with that command.", "",
          "## Machine", "",
          "| | |", "|---|---|",
          f"| date | {v.s('date')} |",
          f"| CPU | {v.s('cpu')} |",
          f"| cores | {v.s('cores')} |",
          f"| memory | {v.s('memory')} |",
          f"| kernel | {v.s('kernel')} |",
          f"| nftables / libnftnl / libmnl | {v.s('nft')} / {v.s('libnftnl')} / {v.s('libmnl')} |",
          f"| iptables (kube-proxy) | {v.s('iptables_version')} ({v.s('kp_iptables')}) |",
          f"| kube-annex | {v.s('version')} |",
          f"| Kubernetes (API server, controller-manager, kube-proxy) | {v.s('k8s_version')} |",
          f"| load average before / after | {v.s('load_before')} / {v.s('load_after')} |",
          f"| run time of make bench | {fmt_s(v.f('runtime_s'))} |",
          "",
          "## Goals (DESIGN.md)", "",
          "| goal | target | measured |", "|---|---|---|"]
    md += [f"| {g[0]} | {g[1]} | {g[2]} |" for g in goals]
    cur = None
    for sec, what, val, note in rows:
        if sec != cur:
            md += ["", f"## {sec}", "", "| | result | notes |", "|---|---|---|"]
            cur = sec
        md.append(f"| {what.strip()} | {val} | {note} |")
    md += ["", "## How each figure is measured", "", METHOD.strip()]
    with open(md_path, "w") as f:
        f.write("\n".join(md) + "\n")


METHOD = """
All figures come from one run of `make bench` (bench/run.sh) on the machine
above. The machine may be shared: the load average before and after the run
is recorded above; rates and latencies move with it.

1. **Cold programming.** `bench/nft-cold` links kube-annex's own objects
   (everything but agent/main.o), fills `struct model_entry` values for N
   Services × 10 endpoints in memory, and times `nft_stage()` of all of
   them + `nft_commit()` until the kernel has acknowledged the batch, in a
   fresh network namespace each time (median of 3; "kernel (sys)" is the
   process's system time, i.e. the kernel's share). "1 endpoint change" is
   one backend of one Service replaced, stage + commit, 1000 times with
   everything programmed. "Restart" is a new handle (what a restarted
   daemon has) with the full table already in the kernel: its first commit
   (kube-annex adopts an identical table), then, after `nft_reset()`, a
   commit that replaces the whole table in one transaction. The
   kube-proxy rulesets come from `bench/gen-kube-proxy-ruleset.py` for the
   same Services (same VIPs, endpoints, comments), in the flat
   `add`/`flush` transaction form knftables sends to `nft -f -`; each is
   loaded with `nft -f` into a fresh namespace (`unshare -n`) and timed
   until nft exits. "kube-annex's own listing" is `nft list table ip
   kube-annex` of the same state loaded the same way.
2. **Start to ready.** The real Kubernetes 1.20 control plane of
   tests/env/lib.sh (prefix kabench). N selector-less Services (spread over
   100 namespaces) and their Endpoints objects are created through the API
   server; the endpointslicemirroring controller turns each into an
   EndpointSlice, and the run waits until all slices exist. kube-annex is
   started in the host namespace with `-v`; its stderr is timestamped as it
   arrives. "start → Programmed" is the daemon's own figure from its
   `Programmed ...` line; the list lines are the arrival times of
   "Initial list of ... complete" after launch. kube-proxy 1.20
   (`--proxy-mode=iptables`, iptables-legacy by default, flags from
   DESIGN.md "Facts", a Node object of its own so it does not wait for one)
   runs in its own namespace against the same API server and Services; its
   figures are the `syncProxyRules took` lines of its log and the
   `kubeproxy_sync_proxy_rules_duration_seconds` histogram.
3. **One endpoint change.** Endpoints objects are patched one at a time
   through the API server (a different Service each time, its last address
   replaced), paced so that each change is its own sync. kube-annex's
   "API event → kernel" is the `event->kernel` figure of its per-sync
   debug line (first watch event of the change → end of the kernel
   commit). "Endpoints PATCH → kernel" adds the API server and the
   mirroring controller: from the PATCH to the arrival of the sync's log
   line. Kubernetes 1.20's mirroring controller does not copy
   `endpoints.kubernetes.io/last-change-trigger-time` to the slices, so
   neither kube-annex's "cluster change" figure nor kube-proxy's
   network-programming histogram gets samples. For kube-proxy, "API event
   → rules restored" is from its config handler's `OnEndpointSliceUpdate`
   log line (`--vmodule=config=4`) to the end of the first
   `syncProxyRules` that started after it.
4. **Memory.** VmRSS/VmHWM from /proc/PID/status right after "Programmed"
   and after the endpoint changes.
5. **New connections.** `bench/conn serve` (a single-threaded epoll HTTP
   server) in pod1; `bench/conn client` in the host namespace opens one TCP
   connection per request (GET, read to EOF, close), CONCURRENCY in flight,
   for the rate (median of the rounds, pod IP and ClusterIP interleaved;
   the 10k-vs-1 comparison divides each ClusterIP round by the pod-IP round
   just before it, so that load from elsewhere on the machine cancels out);
   connect() latency (SYN sent → connection established: the first packet's
   round trip through the DNAT) is measured with one connection at a time.
   The small state is kube-annex with bench/web and default/kubernetes only;
   the large one has all N Services programmed. The client closes each
   connection with a reset once it has the whole answer, so no TIME_WAIT is
   left on either side: at 10^4 connections a second the client reuses its
   ports within seconds, and a server-side TIME_WAIT left by a connection
   to the pod IP (whose TCP timestamps have another offset than those to
   the ClusterIP) makes the server refuse the next SYN on that port, a 1 s
   retransmission that belongs to the benchmark, not to the path.
6. **Idle CPU.** utime+stime from /proc/PID/stat (kube-proxy: plus its
   reaped children, i.e. iptables-save/-restore), on-CPU time from
   /proc/PID/schedstat and context switches, over the idle window after
   the daemon is ready and its log has been quiet for 2 s.
"""


def fmt_mb(kb):
    return f"{kb / 1024:.1f} MB" if kb is not None else "n/a"


def fmt_us(us):
    return fmt_ms(us / 1000) if us is not None else "n/a"


def fmt_pct(x):
    return f"{x * 100:.1f} %" if x is not None else "n/a"


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"ka-start": ka_start, "ka-churn": ka_churn, "kp-syncs": kp_syncs, "kp-churn": kp_churn,
     "render": render}[cmd](*args)


if __name__ == "__main__":
    main()
