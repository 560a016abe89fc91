#!/usr/bin/env python3
"""What netacct costs the system it watches (BENCHMARKS.md, issue 4).

On one machine in one run, alternating phases without netacct and with `netacct daemon
--threads` running (the order flips every round, so that drift hits both sides alike):
  - a private nginx on loopback serving a small static page, driven by wrk and by ab;
  - iperf3 bulk transfers over loopback, TCP and UDP;
  - the kernel's statistics of netacct's programs (kernel.bpf_stats_enabled): ns per event,
    ns per HTTP request;
  - the daemon's own CPU time and peak memory.
Reports medians, min/max and the paired per-round with/without ratios. Bounded in time;
cleans up everything it started. Run as root: bench/overhead [--rounds N] [--seconds S].
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORT = 18080
IPERF_PORT = 18201


def run(args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def start_nginx(workdir):
    html = os.path.join(workdir, "html")
    os.makedirs(html)
    with open(os.path.join(html, "index.html"), "w") as f:
        f.write("<html><body>" + "netacct " * 100 + "</body></html>\n")  # ~830 bytes
    conf = os.path.join(workdir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{PORT};
        root {html};
    }}
}}
""")
    process = subprocess.Popen(["nginx", "-p", workdir, "-c", conf], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", PORT), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.05)
    raise SystemExit("overhead: nginx did not start")


def wrk(seconds):
    out = run(["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{PORT}/index.html"]).stdout
    rps = latency = None
    requests = None
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            rps = float(parts[1])
        elif parts and parts[0] == "Latency" and len(parts) > 1 and latency is None:
            latency = to_ms(parts[1])
        elif "requests in" in line:
            requests = int(parts[0])
    return {"rps": rps, "latency_ms": latency, "requests": requests}


def to_ms(text):
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def ab(requests):
    out = run(["ab", "-q", "-k", "-n", str(requests), "-c", "32", f"http://127.0.0.1:{PORT}/index.html"]).stdout
    result = {}
    for line in out.splitlines():
        if line.startswith("Requests per second:"):
            result["rps"] = float(line.split()[3])
        elif line.startswith("Time per request:") and "(mean)" in line and "across" not in line:
            result["latency_ms"] = float(line.split()[3])
    result["requests"] = requests
    return result


def iperf(seconds, udp):
    args = ["iperf3", "-c", "127.0.0.1", "-p", str(IPERF_PORT), "-t", str(seconds), "-J"]
    if udp:
        args += ["-u", "-b", "0", "-l", "1400"]
    report = json.loads(run(args).stdout)
    end = report["end"]
    summary = end["sum"] if udp else end["sum_received"]
    return {"gbps": summary["bits_per_second"] / 1e9}


PROGRAMS = ("count_send", "count_recv", "record_exit")


def prog_stats():
    """run_time_ns and run_cnt of netacct's programs (bpftool): the traffic programs summed
    under "ns"/"runs", and each program under its name."""
    shown = json.loads(run(["bpftool", "prog", "show", "-j"]).stdout)
    total = {"ns": 0, "runs": 0}
    for prog in shown:
        name = prog.get("name")
        if name in PROGRAMS:
            ns, runs = prog.get("run_time_ns", 0), prog.get("run_cnt", 0)
            total[name] = (total.get(name, (0, 0))[0] + ns, total.get(name, (0, 0))[1] + runs)
            if name != "record_exit":
                total["ns"] += ns
                total["runs"] += runs
    return total


def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_peak_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class Daemon:
    def __init__(self, binary, workdir):
        self.socket = os.path.join(workdir, "netatop.sock")
        self.process = subprocess.Popen([binary, "daemon", "--threads", "--socket", self.socket,
                                         "--api-socket", os.path.join(workdir, "api.sock")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if os.path.exists(self.socket):
                return
            time.sleep(0.05)
        self.stop()
        raise SystemExit("overhead: netacct daemon did not start")

    def stop(self):
        cpu, peak = proc_cpu_seconds(self.process.pid), proc_peak_kib(self.process.pid)
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=10)
        return cpu, peak


def summary(values):
    return f"{statistics.median(values):.3f} (min {min(values):.3f}, max {max(values):.3f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=8, help="length of each wrk and iperf3 phase")
    parser.add_argument("--ab-requests", type=int, default=100000)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build/release/netacct"))
    parser.add_argument("--control", action="store_true",
                        help="A/A control: the 'with' phases run without netacct too, to measure the noise")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("overhead: run as root (it loads BPF programs and reads their statistics)")

    workdir = tempfile.mkdtemp(prefix="netacct-overhead-")
    nginx = start_nginx(workdir)
    iperf_server = subprocess.Popen(["iperf3", "-s", "-p", str(IPERF_PORT)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
    stats_before = open("/proc/sys/kernel/bpf_stats_enabled").read().strip()
    open("/proc/sys/kernel/bpf_stats_enabled", "w").write("1")
    results = {"off": [], "on": []}
    bpf = []
    per_program = {}
    daemon_cpu = []
    daemon_peak = 0
    started = time.time()
    try:
        time.sleep(0.5)
        wrk(2)  # warm up
        for round_number in range(args.rounds):
            order = ["off", "on"] if round_number % 2 == 0 else ["on", "off"]
            for phase in order:
                daemon = Daemon(args.binary, workdir) if phase == "on" and not args.control else None
                try:
                    before = prog_stats() if daemon else None
                    w = wrk(args.seconds)
                    after_wrk = prog_stats() if daemon else None
                    a = ab(args.ab_requests)
                    tcp = iperf(args.seconds, udp=False)
                    udp = iperf(args.seconds, udp=True)
                    after = prog_stats() if daemon else None
                finally:
                    if daemon:
                        cpu, peak = daemon.stop()
                results[phase].append({"wrk": w, "ab": a, "tcp": tcp, "udp": udp})
                if daemon:
                    daemon_cpu.append(cpu)
                    daemon_peak = max(daemon_peak, peak)
                    runs = after["runs"] - before["runs"]
                    wrk_ns = after_wrk["ns"] - before["ns"]
                    for name in PROGRAMS:
                        ns = after.get(name, (0, 0))[0] - before.get(name, (0, 0))[0]
                        count = after.get(name, (0, 0))[1] - before.get(name, (0, 0))[1]
                        per_program.setdefault(name, []).append(ns / count if count else float("nan"))
                    bpf.append({"ns_per_event": (after["ns"] - before["ns"]) / runs if runs else float("nan"),
                                "ns_per_request": wrk_ns / w["requests"] if w["requests"] else float("nan"),
                                "events_per_request": (after_wrk["runs"] - before["runs"]) / w["requests"]})
            print(f"round {round_number + 1}/{args.rounds} done ({time.time() - started:.0f} s)", file=sys.stderr)
    finally:
        open("/proc/sys/kernel/bpf_stats_enabled", "w").write(stats_before)
        for process in (nginx, iperf_server):
            process.terminate()
            process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)

    def series(phase, tool, key):
        return [r[tool][key] for r in results[phase]]

    def ratios(tool, key):
        return [on / off for on, off in zip(series("on", tool, key), series("off", tool, key))]

    cores = os.cpu_count()
    kernel = os.uname().release
    if args.control:
        print("A/A CONTROL RUN: netacct was not running in either phase; the ratios show the noise.\n")
    print(f"netacct overhead: {args.rounds} rounds, {args.seconds} s phases, {cores} CPUs, kernel {kernel}, "
          f"{time.strftime('%Y-%m-%d')}, {time.time() - started:.0f} s in all\n")
    print("| measure | without netacct | with netacct daemon --threads | with/without, paired per round |")
    print("|---|---|---|---|")
    for label, tool, key in (("wrk requests/s", "wrk", "rps"), ("wrk mean latency ms", "wrk", "latency_ms"),
                             ("ab requests/s", "ab", "rps"), ("ab mean time per request ms", "ab", "latency_ms"),
                             ("iperf3 TCP Gbit/s", "tcp", "gbps"), ("iperf3 UDP Gbit/s", "udp", "gbps")):
        paired = ratios(tool, key)
        print(f"| {label} | {summary(series('off', tool, key))} | {summary(series('on', tool, key))} | "
              f"median {statistics.median(paired):.3f}, spread {min(paired):.3f}-{max(paired):.3f} "
              f"({' '.join(f'{r:.3f}' for r in paired)}) |")
    if args.control:
        return
    print()
    print("| netacct's own cost | value |")
    print("|---|---|")
    print(f"| BPF ns per socket event (count_send + count_recv, all phases) | {summary([b['ns_per_event'] for b in bpf])} |")
    for name in PROGRAMS:
        values = [v for v in per_program.get(name, []) if v == v]
        if values:
            print(f"| BPF ns per run of {name} | {summary(values)} |")
    print(f"| BPF ns per HTTP request (wrk; both nginx's and wrk's calls) | {summary([b['ns_per_request'] for b in bpf])} |")
    print(f"| socket events per HTTP request | {statistics.median([b['events_per_request'] for b in bpf]):.2f} |")
    print(f"| daemon CPU seconds per phase (about {3 * args.seconds + 10} s, no client asking) | {summary(daemon_cpu)} |")
    print(f"| daemon CPU over all phases with it | {sum(daemon_cpu):.2f} s |")
    print(f"| daemon peak resident memory (VmHWM) | {daemon_peak // 1024} MiB |")


if __name__ == "__main__":
    main()
