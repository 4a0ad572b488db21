"""molt's serving path against C-client floors (issue 15's "Proof" measurement).

In one run, on loopback ports it picks, this script

1. installs what it needs through the project's script (`scripts/install-deps.sh --bench`: nginx, nghttp2-client for
   h2load and nghttp, wrk, redis-server; only what is missing; `--no-install` skips it);
2. starts nginx as the current user with a config of its own in a temp dir (an h2c listener answering every
   request `return 200` with a small body, an HTTP/1.1 listener for wrk, keepalive_requests high, pid, logs and
   temp paths in the temp dir, `daemon off` in the background), a redis-server, and `molt serve` (the binary
   given) with a memorylock lock store `lockstore`, a redis-state state store `statestore` on that Redis, a
   rate-limiter binding `limiter` and a redis-streams pubsub `pubsub` on that Redis (maxLenApprox 100000, no
   subscriber: a publish is one XADD);
3. measures, each run `--seconds` long after a separate warm-up run of `--warmup-seconds`:
   - gRPC unary calls with h2load (one connection one call at a time `-c1 -m1`; 64 in flight on one connection
     `-c1 -m64`; 16 connections x 4 `-c16 -m4`): nginx h2c (the floor), molt GetMetadata, TryLockAlpha1
     (memorylock, the same resource and owner every call: the first takes the lock, the others answer
     success=false; each is a complete plugin call), GetState (redis-state, one key saved before), InvokeBinding
     (the rate-limiter's `peek` of a key never taken: a declared C operation called through libffi), PublishEvent
     (redis-streams, a small JSON body: molt wraps it in a CloudEvent and XADDs it);
   - `redis-benchmark -c 1` and `-c 64` HGET of the hash GetState reads, and XADD (MAXLEN ~ 100000) of the very
     entry molt's publish wrote, to another stream of the same Redis (the Redis floors);
   - HTTP with wrk (1 and 32 connections): nginx HTTP/1.1 (GET, the floor) against molt's
     `GET /v1.0/metadata`, `POST /v1.0-alpha1/lock/lockstore`, `GET /v1.0/state/statestore/<key>` and
     `POST /v1.0/bindings/limiter` (peek) and `POST /v1.0/publish/pubsub/bench-floor`;
4. reports for each row mean/p50/p99 latency (h2load: from its per-request log; wrk: its latency
   distribution; redis-benchmark: its CSV), calls/s, and for the server process (nginx: its worker processes;
   redis-benchmark: redis-server) context switches per call (voluntary + nonvoluntary over
   /proc/<pid>/task/*/status, after - before, / calls) and CPU per call (utime + stime of /proc/<pid>/stat,
   after - before, / calls); CPU used meanwhile by everything else on the machine (neither server nor
   client; a row with 0.25 cores or more is marked); the ratios to the floors and issue 15's targets;
5. checks that molt answered every call: h2load's failed/errored counts and non-2xx statuses, the DATA bytes
   h2load received against calls x the size of a good answer (a gRPC error is a trailers-only response),
   wrk's non-2xx and socket errors, molt's `molt_calls_total` outcomes other than `ok`, and one call of each
   kind checked by hand (grpc-status 0 with nghttp, HTTP 200) before and after the load;
6. writes all rows as JSON (`--json`), prints a markdown table (also `--markdown`), and stops everything it
   started on exit (also on SIGINT/SIGTERM/SIGHUP; children get SIGTERM if this script dies).

  python serving_floor.py --molt MOLT --plugins-dir DIR [--redis-state-plugin SO] [--seconds 3]
                          [--json OUT.json] [--markdown OUT.md] [--no-install]

Exit status: 0 when every row ran and molt failed no call (a missed target is reported, not an error);
1 otherwise.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import grp
import json
import math
import os
import pwd
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLK_TCK = os.sysconf("SC_CLK_TCK")
GRPC_PATH = "/dapr.proto.runtime.v1.Dapr/"
GRPC_HEADERS = ["-H", "content-type: application/grpc", "-H", "te: trailers"]
STATE_KEY = "bench-key"
APP_ID = "bench"
LOCK_JSON = '{"resourceId":"bench-resource","lockOwner":"bench-owner","expiryInSeconds":60}'
# InvokeBinding of the rate-limiter's read-only `peek` (a declared C operation called through libffi): a key never
# taken, so every answer is the same {"capacity":..,"tokens":..}.
PEEK_DATA = '{"key":"bench-key"}'
BINDING_JSON = '{"operation":"peek","data":{"key":"bench-key"}}'
PUBLISH_JSON = '{"orderId":1,"note":"serving-floor"}'
PUBSUB, TOPIC = "pubsub", "bench-floor"
# redis-streams trims its stream (XADD MAXLEN ~): the redis-benchmark XADD rows trim theirs the same way.
STREAM_MAXLEN = "100000"
HTTP_BODIES = {"lock": LOCK_JSON, "binding": BINDING_JSON, "publish": PUBLISH_JSON}
HTTP_STATUS = {"publish": 204}  # the answer of a good call when not 200


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- processes we start ------------------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    _libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: SIGTERM when this script dies


class Children:
    """Every long-running process this script starts, stopped in reverse order on exit."""

    def __init__(self) -> None:
        self.processes: list[tuple[str, subprocess.Popen, int]] = []

    def start(self, name: str, argv: list[str], logfile: Path, stop_signal: int = signal.SIGTERM, **kwargs) -> subprocess.Popen:
        out = open(logfile, "ab")
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   preexec_fn=_die_with_parent, **kwargs)
        out.close()
        self.processes.append((name, process, stop_signal))
        return process

    def stop_all(self) -> None:
        while self.processes:
            name, process, stop_signal = self.processes.pop()
            if process.poll() is not None:
                continue
            process.send_signal(stop_signal)
            try:
                process.wait(timeout=35)
            except subprocess.TimeoutExpired:
                log(f"{name} did not stop in 35 s: SIGKILL")
                process.kill()
                process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, process: subprocess.Popen, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} is not listening on {port} after {timeout} s")


# --- /proc ---------------------------------------------------------------------------------------------------------

def proc_sample(pids: list[int]) -> tuple[int, int]:
    """(context switches summed over every thread, utime+stime ticks) of these processes."""
    switches = ticks = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                for line in (task / "status").read_text().splitlines():
                    if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                        switches += int(line.split()[1])
            except FileNotFoundError:  # a thread that just exited
                pass
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return switches, ticks


def machine_busy_ticks() -> int:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user
    return fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]


def children_of(pid: int) -> list[int]:
    result = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    result.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                pass
    return sorted(result)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def run_client(argv: list[str], timeout: float, out_path: Path) -> tuple[int, str, float]:
    """Runs a load client to completion; (exit code, output, its own CPU seconds)."""
    with open(out_path, "wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   preexec_fn=_die_with_parent)
    deadline = time.monotonic() + timeout
    try:
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                process.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                process.kill()
                _, status, usage = os.wait4(process.pid, 0)
                process.returncode = os.waitstatus_to_exitcode(status)
                log(f"timed out after {timeout} s: {' '.join(argv)}")
                break
            time.sleep(0.05)
    except BaseException:  # a signal: the client goes with us
        if process.returncode is None:
            process.kill()
            process.wait()
        raise
    return process.returncode, out_path.read_text(errors="replace"), usage.ru_utime + usage.ru_stime


# --- molt ----------------------------------------------------------------------------------------------------------

def pb_string(field: int, value: str) -> bytes:
    data = value.encode()
    return bytes([field << 3 | 2, len(data)]) + data


def grpc_frame(message: bytes) -> bytes:
    return b"\0" + struct.pack(">I", len(message)) + message


def grpc_bodies() -> dict[str, bytes]:
    return {
        "GetMetadata": grpc_frame(b""),
        "TryLockAlpha1": grpc_frame(pb_string(1, "lockstore") + pb_string(2, "bench-resource") + pb_string(3, "bench-owner")
                                    + bytes([4 << 3 | 0, 60])),
        "GetState": grpc_frame(pb_string(1, "statestore") + pb_string(2, STATE_KEY)),
        "InvokeBinding": grpc_frame(pb_string(1, "limiter") + pb_string(2, PEEK_DATA) + pb_string(4, "peek")),
        "PublishEvent": grpc_frame(pb_string(1, PUBSUB) + pb_string(2, TOPIC) + pb_string(3, PUBLISH_JSON)
                                   + pb_string(4, "application/json")),
    }


def molt_outcomes(admin_port: int) -> dict[str, float]:
    """molt_calls_total by (operation, outcome)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10).read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("molt_calls_total{"):
            labels, value = line[len("molt_calls_total{"):].rsplit("}", 1)
            parsed = dict(re.findall(r'(\w+)="([^"]*)"', labels))
            key = f"{parsed.get('operation')}:{parsed.get('outcome')}"
            counts[key] = counts.get(key, 0) + float(value)
    return counts


def failed_outcomes(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    return {key: int(after[key] - before.get(key, 0)) for key in after
            if not key.endswith(":ok") and after[key] - before.get(key, 0) > 0}


def grpc_check(port: int, method: str, body_file: Path) -> tuple[bool, int, str]:
    """One call with nghttp: (grpc-status 0, DATA bytes received, what was seen)."""
    result = subprocess.run(["nghttp", "-v", "-d", str(body_file), *GRPC_HEADERS, f"http://127.0.0.1:{port}{GRPC_PATH}{method}"],
                            capture_output=True, timeout=20)
    text = result.stdout.decode(errors="replace")
    status = re.findall(r"grpc-status: (\d+)", text)
    message = re.findall(r"grpc-message: (.*)", text)
    data = sum(int(n) for n in re.findall(r"recv DATA frame <length=(\d+)", text))
    seen = f"grpc-status {status[-1] if status else 'missing'}{' ' + message[-1] if message else ''}, {data} DATA bytes"
    return (status == ["0"], data, seen)


def http_check(url: str, body: str | None, expect: int = 200) -> tuple[bool, str]:
    request = urllib.request.Request(url, data=body.encode() if body else None, method="POST" if body else "GET",
                                     headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status == expect, f"{response.status} {response.read()[:80]!r}"
    except Exception as error:  # noqa: BLE001 (reported)
        return False, str(error)


def stream_entry_fields(redis_port: int, stream: str) -> list[str]:
    """The field/value pairs of the newest entry of `stream` (what molt's publish XADDed), flattened."""
    done = subprocess.run(["redis-cli", "-p", str(redis_port), "--json", "XREVRANGE", stream, "+", "-", "COUNT", "1"],
                          capture_output=True, text=True, timeout=10)
    entries = json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else []
    if not entries:
        raise RuntimeError(f"no entry in the stream {stream} after a publish: {done.stdout!r} {done.stderr!r}")
    _entry_id, fields = entries[0]
    return [str(value) for value in fields]


# --- parsing the clients' output -----------------------------------------------------------------------------------

def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[max(0, math.ceil(fraction * len(sorted_values)) - 1)]  # nearest rank


def parse_h2load(output: str, log_file: Path) -> dict:
    match = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, "
                      r"(\d+) timeout", output)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", output)
    traffic = re.search(r"traffic: .*?, .*?\((\d+)\) data", output)
    finished = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", output)
    if not (match and codes and traffic and finished):
        raise RuntimeError(f"cannot parse h2load's output:\n{output}")
    total, started, done, succeeded, failed, errored, timeout = (int(x) for x in match.groups())
    latencies = sorted(int(line.split("\t")[2]) for line in log_file.read_text().splitlines() if line.count("\t") == 2)
    # h2load's `failed` counts broken streams (errored among them), not answers with a bad status: done - succeeded has both
    return {"calls": done, "succeeded": succeeded, "failed": max(done - succeeded, failed) + timeout,
            "h2load_counts": {"total": total, "started": started, "done": done, "succeeded": succeeded, "failed": failed,
                              "errored": errored, "timeout": timeout},
            "non_2xx": sum(int(x) for x in codes.groups()[1:]), "data_bytes": int(traffic.group(1)),
            "calls_per_s": float(finished.group(3)),
            "mean_us": statistics.fmean(latencies) if latencies else float("nan"),
            "p50_us": percentile(latencies, 0.50), "p99_us": percentile(latencies, 0.99), "latency_samples": len(latencies)}


def wrk_time_us(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1, "ms": 1e3, "s": 1e6, "m": 60e6}[unit]


def parse_wrk(output: str) -> dict:
    mean = re.search(r"Latency\s+(\S+)", output)
    distribution = dict(re.findall(r"^\s+(\d+)%\s+(\S+)$", output, re.M))
    requests = re.search(r"(\d+) requests in ([\d.]+)(m?s)", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if not (mean and requests and rate and "50" in distribution):
        raise RuntimeError(f"cannot parse wrk's output:\n{output}")
    socket_errors = sum(int(x) for x in errors.groups()) if errors else 0
    return {"calls": int(requests.group(1)), "failed": socket_errors + (int(non_2xx.group(1)) if non_2xx else 0),
            "non_2xx": int(non_2xx.group(1)) if non_2xx else 0, "socket_errors": socket_errors,
            "calls_per_s": float(rate.group(1)), "mean_us": wrk_time_us(mean.group(1)),
            "p50_us": wrk_time_us(distribution["50"]), "p99_us": wrk_time_us(distribution["99"])}


def parse_redis_benchmark(output: str) -> dict:
    lines = [line for line in output.splitlines() if line.startswith('"')]
    header = [x.strip('"') for x in lines[0].split('","')]
    # the first column is the command, which may hold quotes and commas (an XADD of JSON): the numbers are the last ones
    values = [x.strip('"') for x in lines[-1].split('","')][-(len(header) - 1):]
    row = dict(zip(header[1:], values))
    return {"calls_per_s": float(row["rps"]), "mean_us": float(row["avg_latency_ms"]) * 1000,
            "p50_us": float(row["p50_latency_ms"]) * 1000, "p99_us": float(row["p99_latency_ms"]) * 1000}


# --- the run -------------------------------------------------------------------------------------------------------

IDLE_SETTLE_S = 2.0


def demo_idle_rss(args: argparse.Namespace, plugins: Path, workdir: Path, children: "Children") -> int:
    """VmRSS (KiB) of a `molt serve` of the demo components (what `make run` serves), idle, IDLE_SETTLE_S after it is ready."""
    ports = {name: free_port() for name in ("grpc", "http", "control", "admin")}
    demo = Path(__file__).resolve().parents[2] / "examples" / "demo-components.json"
    molt = children.start("molt-demo", [args.molt, "serve", "--plugins-directory", str(plugins), "--components", str(demo),
                                        "--grpc-address", f"127.0.0.1:{ports['grpc']}", "--http-address", f"127.0.0.1:{ports['http']}",
                                        "--control-address", f"127.0.0.1:{ports['control']}",
                                        "--admin-address", f"127.0.0.1:{ports['admin']}", "--log-level", "warning"],
                          workdir / "molt-demo.log")
    wait_port(ports["admin"], molt, "molt (demo)")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not http_check(f"http://127.0.0.1:{ports['admin']}/actuator/health/readiness", None)[0]:
        time.sleep(0.1)
    time.sleep(IDLE_SETTLE_S)
    rss = rss_kib(molt.pid)
    molt.terminate()
    molt.wait(timeout=30)
    return rss


def nginx_config(workdir: Path, h2_port: int, h1_port: int) -> str:
    version = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr
    major_minor = tuple(int(x) for x in re.search(r"nginx/(\d+)\.(\d+)", version).groups())
    # `http2 on` exists from nginx 1.25.1; before it (Debian 12 has 1.22) h2c is a parameter of `listen`
    h2_listen = f"listen 127.0.0.1:{h2_port};\n        http2 on;" if major_minor >= (1, 25) else f"listen 127.0.0.1:{h2_port} http2;"
    user = ""
    if os.geteuid() == 0:  # as root nginx would run its workers as nobody: keep them ours
        user = f"user {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name};"
    temp = "\n    ".join(f"{kind}_temp_path {workdir}/{kind}-temp;" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""# generated by Benchmarks/serving-floor/serving_floor.py
{user}
daemon off;
master_process on;
worker_processes auto;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    {temp}
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    default_type text/plain;
    server {{
        {h2_listen}
        location / {{ return 200 "ok\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{h1_port};
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, children: Children) -> None:
        self.args = args
        self.workdir = workdir
        self.children = children
        self.rows: list[dict] = []
        self.problems: list[str] = []

    def measure(self, row: dict, argv: list[str], warmup_argv: list[str] | None, server_pids: list[int],
                other_known_pids: list[int], parse) -> dict:
        """Runs one load client against server_pids and fills row with what it measured."""
        index = len(self.rows) + 1
        if warmup_argv:
            run_client(warmup_argv, self.args.warmup_seconds + 30, self.workdir / f"run{index:02d}-warmup.out")
        known = server_pids + other_known_pids
        outcomes_before = molt_outcomes(self.admin_port) if row["server"] == "molt" else {}
        switches0, ticks0 = proc_sample(server_pids)
        _, other_ticks0 = proc_sample(other_known_pids) if other_known_pids else (0, 0)
        busy0, wall0 = machine_busy_ticks(), time.monotonic()
        code, output, client_cpu_s = run_client(argv, self.args.seconds + 60, self.workdir / f"run{index:02d}.out")
        busy1, wall1 = machine_busy_ticks(), time.monotonic()
        switches1, ticks1 = proc_sample(server_pids)
        _, other_ticks1 = proc_sample(other_known_pids) if other_known_pids else (0, 0)
        row["command"] = " ".join(argv)
        if code != 0:
            raise RuntimeError(f"{argv[0]} exited {code}:\n{output}")
        row.update(parse(output))
        calls = max(1, row["calls"])
        server_cpu_s = (ticks1 - ticks0) / CLK_TCK
        other_cpu_s = (busy1 - busy0) / CLK_TCK - server_cpu_s - (other_ticks1 - other_ticks0) / CLK_TCK - client_cpu_s
        row.update({"context_switches_per_call": (switches1 - switches0) / calls,
                    "cpu_us_per_call": server_cpu_s * 1e6 / calls,
                    "server_cpu_cores": server_cpu_s / (wall1 - wall0),
                    "client_cpu_cores": client_cpu_s / (wall1 - wall0),
                    "other_cpu_cores": max(0.0, other_cpu_s / (wall1 - wall0)),
                    "wall_s": wall1 - wall0})
        if other_known_pids:
            row["redis_server_cpu_us_per_call"] = (other_ticks1 - other_ticks0) / CLK_TCK * 1e6 / calls
        if row["server"] == "molt":
            row["molt_failed_outcomes"] = failed_outcomes(outcomes_before, molt_outcomes(self.admin_port))
        self.rows.append(row)
        return row

    @staticmethod
    def report(row: dict) -> None:
        log(f"  {row['name']} [{row['mode']}]: {row['calls']} calls, {row['calls_per_s']:.0f}/s, mean {row['mean_us']:.0f} µs, "
            f"p50 {row['p50_us']:.0f} µs, p99 {row['p99_us']:.0f} µs, {row['context_switches_per_call']:.2f} cs/call, "
            f"{row['cpu_us_per_call']:.1f} µs CPU/call, failed {row.get('failed', 0)}, other CPU {row['other_cpu_cores']:.2f}")

    def h2load(self, name: str, server: str, port: int, method: str, body_file: Path, mode: tuple[int, int],
               server_pids: list[int], good_answer_bytes: int | None, other_pids: list[int] | None = None) -> None:
        clients, streams = mode
        url = f"http://127.0.0.1:{port}{GRPC_PATH}{method}"
        base = ["h2load", "-t1", f"-c{clients}", f"-m{streams}", "-d", str(body_file), *GRPC_HEADERS]
        log_file = self.workdir / f"h2load-{len(self.rows) + 1:02d}.log"
        row = {"name": name, "server": server, "client": "h2load", "mode": f"-c{clients} -m{streams}", "method": method}
        self.measure(row, [*base, "-D", str(self.args.seconds), f"--log-file={log_file}", url],
                     [*base, "-D", str(self.args.warmup_seconds), url], server_pids, other_pids or [],
                     lambda output: parse_h2load(output, log_file))
        if good_answer_bytes:
            # a gRPC error is a trailers-only answer (no DATA): fewer DATA bytes than calls x a good answer's are failed
            # calls. The calls in flight when the run ends may have received their DATA and not their trailers yet.
            row["answer_bytes_expected"] = good_answer_bytes
            difference = row["calls"] * good_answer_bytes - row["data_bytes"]
            row["answers_missing_data"] = 0
            if abs(difference) > clients * streams * good_answer_bytes:
                row["answers_missing_data"] = max(1, round(difference / good_answer_bytes)) if difference > 0 else 0
                if difference < 0:
                    self.problems.append(f"{name} {row['mode']}: {-difference} more DATA bytes than {row['calls']} good answers")
            row["failed"] += row["answers_missing_data"]
        row["failed"] += sum(row.get("molt_failed_outcomes", {}).values())
        os.unlink(log_file)
        self.report(row)

    def wrk(self, name: str, server: str, url: str, connections: int, server_pids: list[int], script: Path | None,
            other_pids: list[int] | None = None) -> None:
        threads = 1 if connections == 1 else 2
        base = ["wrk", f"-t{threads}", f"-c{connections}", "--latency", *(["-s", str(script)] if script else [])]
        row = {"name": name, "server": server, "client": "wrk", "mode": f"-c{connections}", "url": url}
        self.measure(row, [*base, f"-d{self.args.seconds}s", url], [*base, f"-d{self.args.warmup_seconds}s", url],
                     server_pids, other_pids or [], parse_wrk)
        row["failed"] += sum(row.get("molt_failed_outcomes", {}).values())
        self.report(row)

    def redis(self, connections: int, redis_port: int, redis_pid: int, command: list[str] | None = None,
              name: str = "redis-server HGET") -> None:
        command = command or ["HGET", f"{APP_ID}||{STATE_KEY}", "data"]
        base = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(redis_port), "-c", str(connections), "--csv"]
        # calibrate the count so that the run takes about --seconds
        _, probe, _ = run_client([*base, "-n", "5000", *command], 60, self.workdir / f"redis-probe-{connections}.out")
        rate = parse_redis_benchmark(probe)["calls_per_s"]
        count = max(10_000, int(rate * self.args.seconds))
        row = {"name": name, "server": "redis-server", "client": "redis-benchmark", "mode": f"-c {connections}"}
        self.measure(row, [*base, "-n", str(count), *command], None, [redis_pid], [],
                     lambda output: {**parse_redis_benchmark(output), "calls": count, "failed": 0})
        self.report(row)


def shown(path: Path) -> str:
    """A path as the notes show it: relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path.resolve())


def fmt(value: float, digits: int = 0) -> str:
    if value != value:  # nan
        return "–"
    return f"{value:,.{digits}f}".replace(",", " ")


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def evaluate(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Ratios of each molt row to its floor, and issue 15's targets."""
    def find(name: str, mode: str) -> dict:
        return next((r for r in rows if r["name"] == name and r["mode"] == mode), {})

    nginx_h2 = {mode: find("nginx h2c return 200", mode) for mode in ("-c1 -m1", "-c1 -m64", "-c16 -m4")}
    nginx_h1 = {mode: find("nginx HTTP/1.1 return 200", mode) for mode in ("-c1", "-c32")}
    redis1, redis64 = find("redis-server HGET", "-c 1"), find("redis-server HGET", "-c 64")
    xadd1, xadd64 = find("redis-server XADD", "-c 1"), find("redis-server XADD", "-c 64")
    for row in rows:
        floor = nginx_h2.get(row["mode"]) if row["client"] == "h2load" else nginx_h1.get(row["mode"]) if row["client"] == "wrk" else None
        if row["server"] == "molt" and floor:
            row["floor"] = floor["name"]
            row["vs_floor"] = {"mean": ratio(row["mean_us"], floor["mean_us"]),
                               "cpu_per_call": ratio(row["cpu_us_per_call"], floor["cpu_us_per_call"]),
                               "calls_per_s": ratio(row["calls_per_s"], floor["calls_per_s"])}
            if row["name"].endswith(("GetState", "GET state")):
                if row["mode"] in ("-c1 -m1", "-c1"):
                    row["vs_floor"]["mean_vs_floor_plus_redis_p50"] = ratio(row["mean_us"], floor["mean_us"] + redis1.get("p50_us", float("nan")))
                else:
                    row["vs_floor"]["calls_per_s_vs_redis_c64"] = ratio(row["calls_per_s"], redis64.get("calls_per_s", float("nan")))
            if row["name"].endswith(("PublishEvent", "POST publish")):
                # publish: against redis-benchmark XADD of an entry of the same size on the same Redis
                row["vs_floor"]["redis_floor"] = "XADD"
                if row["mode"] in ("-c1 -m1", "-c1"):
                    row["vs_floor"]["mean_vs_floor_plus_redis_p50"] = ratio(row["mean_us"], floor["mean_us"] + xadd1.get("p50_us", float("nan")))
                    row["vs_floor"]["mean_vs_redis_mean"] = ratio(row["mean_us"], xadd1.get("mean_us", float("nan")))
                else:
                    row["vs_floor"]["calls_per_s_vs_redis_c64"] = ratio(row["calls_per_s"], xadd64.get("calls_per_s", float("nan")))

    targets = []

    def target(what: str, value: float, limit: float, unit: str, at_most: bool) -> None:
        met = (value <= limit) if at_most else (value >= limit)
        targets.append({"target": what, "measured": value, "limit": limit, "unit": unit, "at_most": at_most,
                        "met": bool(met) if value == value else None})

    for api, lock, state, one, many in (
            ("gRPC", "molt gRPC TryLockAlpha1", "molt gRPC GetState", "-c1 -m1", ("-c1 -m64", "-c16 -m4")),
            ("HTTP", "molt HTTP POST lock", "molt HTTP GET state", "-c1", ("-c32",))):
        floor_one = (nginx_h2 if api == "gRPC" else nginx_h1)[one]
        lock_one, state_one = find(lock, one), find(state, one)
        if lock_one and floor_one:
            target(f"{api} TryLock {one}: context switches per call", lock_one["context_switches_per_call"], 2, "", True)
            target(f"{api} TryLock {one}: CPU per call / {floor_one['name']}'s", ratio(lock_one["cpu_us_per_call"], floor_one["cpu_us_per_call"]),
                   2.5, "×", True)
        if state_one and floor_one and redis1:
            target(f"{api} GetState {one}: context switches per call", state_one["context_switches_per_call"], 3, "", True)
            target(f"{api} GetState {one}: mean / ({floor_one['name']} mean + redis -c 1 HGET p50)",
                   ratio(state_one["mean_us"], floor_one["mean_us"] + redis1["p50_us"]), 1.5, "×", True)
        for mode in many:
            floor = (nginx_h2 if api == "gRPC" else nginx_h1)[mode]
            if find(lock, mode) and floor:
                target(f"{api} TryLock {mode}: calls/s / {floor['name']}'s", ratio(find(lock, mode)["calls_per_s"], floor["calls_per_s"]),
                       0.5, "×", False)
            if find(state, mode) and redis64:
                target(f"{api} GetState {mode}: calls/s / redis -c 64 HGET's", ratio(find(state, mode)["calls_per_s"], redis64["calls_per_s"]),
                       0.5, "×", False)
    return rows, targets


def markdown(result: dict) -> str:
    lines = [f"Run {result['started']} ({result['seconds']} s per run after a {result['warmup_seconds']} s warm-up run; "
             f"{result['machine']}).", "",
             "| server, call | client | calls | failed | calls/s | mean µs | p50 µs | p99 µs | ctx switches / call | CPU µs / call | vs floor | other CPU |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for row in result["rows"]:
        vs = row.get("vs_floor")
        note = ""
        if vs:
            note = f"mean {vs['mean']:.1f}×, CPU {vs['cpu_per_call']:.1f}×, calls/s {vs['calls_per_s'] * 100:.0f} %"
            redis_call = vs.get("redis_floor", "HGET")
            if "mean_vs_floor_plus_redis_p50" in vs:
                note += f"; mean / (floor + {redis_call} p50) {vs['mean_vs_floor_plus_redis_p50']:.1f}×"
            if "mean_vs_redis_mean" in vs:
                note += f"; mean / {redis_call} mean {vs['mean_vs_redis_mean']:.1f}×"
            if "calls_per_s_vs_redis_c64" in vs:
                note += f"; {vs['calls_per_s_vs_redis_c64'] * 100:.0f} % of redis -c 64 {redis_call}"
        elif row["server"] != "molt":
            note = "floor"
        other = f"{row['other_cpu_cores']:.2f}" + (" ⚠️" if row["other_cpu_cores"] >= 0.25 else "")
        lines.append(f"| {row['name']} | {row['client']} {row['mode']} | {row['calls']} | {row.get('failed', 0)} | {fmt(row['calls_per_s'])} | "
                     f"{fmt(row['mean_us'])} | {fmt(row['p50_us'])} | {fmt(row['p99_us'])} | {row['context_switches_per_call']:.2f} | "
                     f"{fmt(row['cpu_us_per_call'], 1)} | {note} | {other} |")
    lines += ["", "| issue 15 target | measured | limit | met |", "| --- | ---: | ---: | --- |"]
    for t in result["targets"]:
        limit = f"{'≤' if t['at_most'] else '≥'} {t['limit']:g}{t['unit']}"
        met = "–" if t["met"] is None else "✅" if t["met"] else "❌"
        lines.append(f"| {t['target']} | {t['measured']:.2f}{t['unit']} | {limit} | {met} |")
    lines += ["", *(f"- {note}" for note in result["notes"])]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--molt", required=True, help="the molt binary (a release build)")
    parser.add_argument("--plugins-dir", required=True, help="where memorylock-1.0.0.so is (and redis-state-1.0.0.so)")
    parser.add_argument("--redis-state-plugin", help="the redis-state plugin to load (default: libRedisState.so beside "
                        "--molt when there is one, a release build beside a release molt; else --plugins-dir's)")
    parser.add_argument("--seconds", type=float, default=3, help="each measured run (default 3)")
    parser.add_argument("--warmup-seconds", type=float, default=1, help="a warm-up run before each (default 1)")
    parser.add_argument("--json", help="write every row here")
    parser.add_argument("--markdown", help="write the table here too")
    parser.add_argument("--no-install", action="store_true", help="do not run scripts/install-deps.sh --bench")
    args = parser.parse_args()
    args.seconds = int(args.seconds) if float(args.seconds).is_integer() else args.seconds
    args.warmup_seconds = int(args.warmup_seconds) if float(args.warmup_seconds).is_integer() else args.warmup_seconds

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)

    if not args.no_install:
        log("== scripts/install-deps.sh")
        if subprocess.run(["bash", str(ROOT / "scripts" / "install-deps.sh"), "--bench"], stdout=sys.stderr).returncode != 0:
            log("scripts/install-deps.sh failed; going on with what is installed")
    missing = [tool for tool in ("nginx", "h2load", "nghttp", "wrk", "redis-server", "redis-benchmark") if not shutil.which(tool)]
    if missing:
        log(f"error: missing {', '.join(missing)} (scripts/install-deps.sh --bench installs them)")
        return 1

    started = datetime.datetime.now(datetime.timezone.utc)
    workdir = Path(tempfile.mkdtemp(prefix="molt-serving-floor-"))
    children = Children()
    try:
        bench = Bench(args, workdir, children)
        molt_dir = Path(args.molt).resolve().parent
        redis_plugin = Path(args.redis_state_plugin) if args.redis_state_plugin else (
            molt_dir / "libRedisState.so" if (molt_dir / "libRedisState.so").exists() else Path(args.plugins_dir) / "redis-state-1.0.0.so")
        plugins = workdir / "plugins"
        plugins.mkdir()
        shutil.copy2(Path(args.plugins_dir) / "memorylock-1.0.0.so", plugins / "memorylock-1.0.0.so")
        shutil.copy2(redis_plugin, plugins / "redis-state-1.0.0.so")
        shutil.copy2(Path(args.plugins_dir) / "rate-limiter-1.0.0.so", plugins / "rate-limiter-1.0.0.so")
        shutil.copy2(Path(args.plugins_dir) / "redis-streams-1.0.0.so", plugins / "redis-streams-1.0.0.so")

        ports = {name: free_port() for name in ("h2", "h1", "redis", "grpc", "http", "control", "admin")}
        bench.admin_port = ports["admin"]

        # nginx
        (workdir / "nginx.conf").write_text(nginx_config(workdir, ports["h2"], ports["h1"]))
        nginx = children.start("nginx", ["nginx", "-p", str(workdir), "-e", str(workdir / "nginx-error.log"),
                                         "-c", str(workdir / "nginx.conf")], workdir / "nginx.out")
        wait_port(ports["h2"], nginx, "nginx")
        wait_port(ports["h1"], nginx, "nginx")
        deadline = time.monotonic() + 10
        while not (workers := children_of(nginx.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        nginx_version = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()

        # the demo's plugins: the C ones of --plugins-dir, redis-state measured here
        demo_plugins = workdir / "demo-plugins"
        demo_plugins.mkdir()
        for plugin in [*Path(args.plugins_dir).glob("in-memory-*.so"), *Path(args.plugins_dir).glob("memorylock-*.so")]:
            shutil.copy2(plugin, demo_plugins / plugin.name)
        shutil.copy2(redis_plugin, demo_plugins / "redis-state-1.0.0.so")
        idle_rss = demo_idle_rss(args, demo_plugins, workdir, children)

        # redis-server and molt
        redis = children.start("redis-server", ["redis-server", "--port", str(ports["redis"]), "--bind", "127.0.0.1", "--save", "",
                                                "--appendonly", "no", "--dir", str(workdir)], workdir / "redis.log")
        wait_port(ports["redis"], redis, "redis-server")
        components = workdir / "components.json"
        components.write_text(json.dumps({"components": [
            {"kind": "lock", "name": "lockstore", "plugin": "memorylock", "metadata": {}},
            {"kind": "state", "name": "statestore", "plugin": "redis-state", "metadata": {"redisHost": f"127.0.0.1:{ports['redis']}"}},
            {"kind": "binding", "name": "limiter", "plugin": "rate-limiter", "metadata": {"capacity": "1000"}},
            {"kind": "pubsub", "name": PUBSUB, "plugin": "redis-streams",
             "metadata": {"redisHost": f"127.0.0.1:{ports['redis']}", "maxLenApprox": STREAM_MAXLEN}}]}))
        molt = children.start("molt", [args.molt, "serve", "--plugins-directory", str(plugins), "--components", str(components),
                                       "--app-id", APP_ID,
                                       "--grpc-address", f"127.0.0.1:{ports['grpc']}", "--http-address", f"127.0.0.1:{ports['http']}",
                                       "--control-address", f"127.0.0.1:{ports['control']}",
                                       "--admin-address", f"127.0.0.1:{ports['admin']}", "--log-level", "warning"],
                              workdir / "molt.log")
        for port in ("grpc", "http", "admin"):
            wait_port(ports[port], molt, "molt")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if http_check(f"http://127.0.0.1:{ports['admin']}/actuator/health/readiness", None)[0]:
                break
            time.sleep(0.1)
        ok, seen = http_check(f"http://127.0.0.1:{ports['http']}/v1.0/state/statestore",
                              json.dumps([{"key": STATE_KEY, "value": {"orderId": 1, "note": "serving-floor"}}]))
        if not ok and not seen.startswith("204"):
            raise RuntimeError(f"saving the state GetState reads failed: {seen}")
        stored = subprocess.run(["redis-cli", "-p", str(ports["redis"]), "HGET", f"{APP_ID}||{STATE_KEY}", "data"],
                                capture_output=True, text=True).stdout.strip() if shutil.which("redis-cli") else "(no redis-cli)"
        log(f"== nginx {workers} ({nginx_version}), redis-server {redis.pid}, molt {molt.pid}; "
            f"Redis has {APP_ID}||{STATE_KEY} data = {stored}; work dir {workdir}")
        molt_rss_start = rss_kib(molt.pid)

        bodies = grpc_bodies()
        body_files = {}
        for method, body in bodies.items():
            body_files[method] = workdir / f"{method}.bin"
            body_files[method].write_bytes(body)
        lock_lua = workdir / "lock.lua"
        lock_lua.write_text(f'wrk.method = "POST"\nwrk.body = \'{LOCK_JSON}\'\nwrk.headers["Content-Type"] = "application/json"\n')
        binding_lua = workdir / "binding.lua"
        binding_lua.write_text(f'wrk.method = "POST"\nwrk.body = \'{BINDING_JSON}\'\nwrk.headers["Content-Type"] = "application/json"\n')
        publish_lua = workdir / "publish.lua"
        publish_lua.write_text(f'wrk.method = "POST"\nwrk.body = \'{PUBLISH_JSON}\'\nwrk.headers["Content-Type"] = "application/json"\n')

        # one call of each kind by hand, and the size of a good answer
        answer_bytes = {}
        checks = []
        for method in bodies:
            good, data, seen = grpc_check(ports["grpc"], method, body_files[method])
            checks.append(f"before: gRPC {method}: {seen}")
            if not good:
                raise RuntimeError(f"molt's {method} does not answer grpc-status 0: {seen}")
            answer_bytes[method] = data
        # TryLock's first answer is success=true (7 bytes), every later one success=false (5 bytes): take a second one
        good, answer_bytes["TryLockAlpha1"], seen = grpc_check(ports["grpc"], "TryLockAlpha1", body_files["TryLockAlpha1"])
        checks.append(f"before: gRPC TryLockAlpha1 again (lock held): {seen}")
        http_urls = {"metadata": f"http://127.0.0.1:{ports['http']}/v1.0/metadata",
                     "lock": f"http://127.0.0.1:{ports['http']}/v1.0-alpha1/lock/lockstore",
                     "state": f"http://127.0.0.1:{ports['http']}/v1.0/state/statestore/{STATE_KEY}",
                     "binding": f"http://127.0.0.1:{ports['http']}/v1.0/bindings/limiter",
                     "publish": f"http://127.0.0.1:{ports['http']}/v1.0/publish/{PUBSUB}/{TOPIC}"}
        for name, url in http_urls.items():
            ok, seen = http_check(url, HTTP_BODIES.get(name), HTTP_STATUS.get(name, 200))
            checks.append(f"before: HTTP {name}: {seen}")
            if not ok:
                raise RuntimeError(f"molt's HTTP {name} failed: {seen}")
        for line in checks:
            log(f"  {line}")
        xadd_fields = stream_entry_fields(ports["redis"], TOPIC)
        checks.append(f"the entry molt's publish wrote ({TOPIC}), XADDed by redis-benchmark: "
                      f"{' '.join(xadd_fields)[:300]}")

        h2_modes = [(1, 1), (1, 64), (16, 4)]
        log("== gRPC with h2load")
        for mode in h2_modes:
            bench.h2load("nginx h2c return 200", "nginx", ports["h2"], "TryLockAlpha1", body_files["TryLockAlpha1"], mode, workers, None)
            bench.h2load("molt gRPC GetMetadata", "molt", ports["grpc"], "GetMetadata", body_files["GetMetadata"], mode, [molt.pid],
                         answer_bytes["GetMetadata"])
            bench.h2load("molt gRPC TryLockAlpha1", "molt", ports["grpc"], "TryLockAlpha1", body_files["TryLockAlpha1"], mode,
                         [molt.pid], answer_bytes["TryLockAlpha1"])
            bench.h2load("molt gRPC GetState", "molt", ports["grpc"], "GetState", body_files["GetState"], mode, [molt.pid],
                         answer_bytes["GetState"], other_pids=[redis.pid])
            bench.h2load("molt gRPC InvokeBinding", "molt", ports["grpc"], "InvokeBinding", body_files["InvokeBinding"], mode,
                         [molt.pid], answer_bytes["InvokeBinding"])
            bench.h2load("molt gRPC PublishEvent", "molt", ports["grpc"], "PublishEvent", body_files["PublishEvent"], mode,
                         [molt.pid], answer_bytes["PublishEvent"], other_pids=[redis.pid])
        log("== Redis floor with redis-benchmark")
        for connections in (1, 64):
            bench.redis(connections, ports["redis"], redis.pid)
        # XADD of the entry molt's publish writes (a CloudEvent in `data`, its content type), trimmed as molt's stream
        for connections in (1, 64):
            bench.redis(connections, ports["redis"], redis.pid, name="redis-server XADD",
                        command=["XADD", "bench-xadd", "MAXLEN", "~", STREAM_MAXLEN, "*", *xadd_fields])
        log("== HTTP with wrk")
        for connections in (1, 32):
            bench.wrk("nginx HTTP/1.1 return 200", "nginx", f"http://127.0.0.1:{ports['h1']}/", connections, workers, None)
            bench.wrk("molt HTTP GET metadata", "molt", http_urls["metadata"], connections, [molt.pid], None)
            bench.wrk("molt HTTP POST lock", "molt", http_urls["lock"], connections, [molt.pid], lock_lua)
            bench.wrk("molt HTTP GET state", "molt", http_urls["state"], connections, [molt.pid], None, other_pids=[redis.pid])
            bench.wrk("molt HTTP POST binding", "molt", http_urls["binding"], connections, [molt.pid], binding_lua)
            bench.wrk("molt HTTP POST publish", "molt", http_urls["publish"], connections, [molt.pid], publish_lua,
                      other_pids=[redis.pid])

        for method in bodies:
            good, data, seen = grpc_check(ports["grpc"], method, body_files[method])
            checks.append(f"after: gRPC {method}: {seen}")
            if not good:
                bench.problems.append(f"after the load, molt's {method} answers {seen}")
        for name, url in http_urls.items():
            ok, seen = http_check(url, HTTP_BODIES.get(name), HTTP_STATUS.get(name, 200))
            checks.append(f"after: HTTP {name}: {seen}")
            if not ok:
                bench.problems.append(f"after the load, molt's HTTP {name} answers {seen}")
        molt_rss_end = rss_kib(molt.pid)
        molt_log = (workdir / "molt.log").read_text(errors="replace")
        molt_log_lines = [line for line in molt_log.splitlines() if line.strip()]

        rows, targets = evaluate(bench.rows)
        targets.append({"target": "idle RSS of molt serve with the demo components (MiB)", "measured": idle_rss / 1024, "limit": 30,
                        "unit": "", "at_most": True, "met": idle_rss / 1024 <= 30})
        for row in rows:
            if row["server"] == "molt" and row.get("failed", 0):
                bench.problems.append(f"{row['name']} {row['mode']}: {row['failed']} failed calls "
                                      f"(molt outcomes {row.get('molt_failed_outcomes')}, non-2xx {row.get('non_2xx')})")
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "?")
        notes = [
            f"Server CPU and context switches: molt's process; nginx: its {len(workers)} worker processes (worker_processes auto); "
            "redis-server for the redis-benchmark rows. GetState and publish rows: molt only (redis-server's CPU per call is in the JSON, "
            "and is not counted in other CPU).",
            "gRPC rows: h2load -t1, POST of a gRPC unary request (5-byte frame header + protobuf, content-type application/grpc, "
            "te trailers); nginx answers every request `return 200` (3 bytes); latencies from h2load's per-request log. "
            "HTTP rows: wrk (1 thread for -c1, 2 for -c32); nginx GET /. "
            "TryLock: the same resource and owner every call (after the first: success=false, the lock is held).",
            f"molt: {shown(Path(args.molt))}; redis-state plugin: {shown(redis_plugin)}; "
            f"memorylock: {shown(Path(args.plugins_dir) / 'memorylock-1.0.0.so')}. "
            f"{nginx_version}, redis-server {subprocess.run(['redis-server', '--version'], capture_output=True, text=True).stdout.split()[2].removeprefix('v=')}, "
            f"{subprocess.run(['h2load', '--version'], capture_output=True, text=True).stdout.strip()}.",
            f"molt RSS (memorylock + redis-state): {molt_rss_start / 1024:.1f} MiB before the load, "
            f"{molt_rss_end / 1024:.1f} MiB after. Idle RSS with the demo components (examples/demo-components.json, "
            f"in-memory, memorylock and redis-state in the catalog), {IDLE_SETTLE_S:g} s after readiness: {idle_rss / 1024:.1f} MiB.",
            "other CPU: CPU cores used during the run by everything but the server, redis-server and the client "
            "(other processes, the kernel's own threads); ⚠️ at 0.25 or more.",
        ]
        if molt_log_lines:
            notes.append(f"molt logged {len(molt_log_lines)} lines at warning or above, e.g.: {molt_log_lines[0][:200]}")
        else:
            notes.append("molt logged nothing at warning level or above.")
        notes += [f"PROBLEM: {problem}" for problem in bench.problems]
        result = {"started": started.strftime("%Y-%m-%d %H:%M UTC"), "seconds": args.seconds, "warmup_seconds": args.warmup_seconds,
                  "machine": f"{cpu}, {os.cpu_count()} CPUs, load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])} at the end",
                  "rows": rows, "targets": targets, "checks": checks, "notes": notes,
                  "molt_rss_kib": {"start": molt_rss_start, "end": molt_rss_end, "demo_idle": idle_rss}, "molt_log": molt_log_lines[:50],
                  "duration_s": (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()}
        text = markdown(result)
        print(text, end="")
        for path in (args.json, args.markdown):
            if path:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        if args.markdown:
            Path(args.markdown).write_text(text)
        log(f"== done in {result['duration_s']:.0f} s")
        return 1 if bench.problems else 0
    finally:
        children.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
