"""The process harness shared by the benchmark scripts (Benchmarks/config-agents/config_agents_bench.py and
Benchmarks/scenarios/scenarios.py): real redis-server, etcd and `molt serve` processes on free loopback
ports, molt's control plane and etcd driven with grpcio stubs generated at run time from
Sources/MoltProtos/protos.

Every process is started through a `Processes`, whose `close()` ends them all (SIGTERM, then SIGKILL), so a
script that calls it in a `finally` leaves nothing running, also on failure. Only the standard library and
grpcio/grpcio-tools are needed (both venvs, build/venv and build/bench-venv, have them).
"""

import http.client
import importlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[2]
PROTOS_DIR = ROOT / "Sources" / "MoltProtos" / "protos"
APP_ID = "bench"
EVENT_TIMEOUT_S = 15.0  # one change until every sidecar reported its apply
STARTUP_TIMEOUT_S = 60.0


class BenchError(Exception):
    """A measurement could not be made (a process did not start, a stream broke, ...)."""


def log(message):
    print(message, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unix_ms():
    """The wall clock in Unix milliseconds (comparable with ApplyResult.finished_unix_ms)."""
    return int(time.time() * 1000)


def percentile(samples, fraction):
    """Nearest-rank percentile of `samples` (not empty)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def summary_ms(samples):
    return {"p50": round(percentile(samples, 0.50), 2), "p99": round(percentile(samples, 0.99), 2),
            "max": round(max(samples), 2), "count": len(samples)}


def rss_kib(pid):
    """VmRSS of a process in KiB (from /proc/<pid>/status); None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _process_cpu_s(pid):
    """utime + stime of a process in seconds (from /proc/<pid>/stat); None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy_s():
    """CPU seconds the whole machine spent busy (all CPUs) since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_quiet(max_busy_cores, timeout_s, sample_s=3.0):
    """Waits until the machine's busy CPUs, averaged over `sample_s`, are below `max_busy_cores` (call it when
    nothing of the bench runs: what is busy is other work); gives up after `timeout_s`. Returns the last
    sample and whether it was quiet."""
    deadline = time.monotonic() + timeout_s
    while True:
        busy0, t0 = _machine_busy_s(), time.monotonic()
        time.sleep(sample_s)
        busy = (_machine_busy_s() - busy0) / (time.monotonic() - t0)
        if busy < max_busy_cores:
            return round(busy, 2), True
        if time.monotonic() >= deadline:
            return round(busy, 2), False


class CpuMeter:
    """How much CPU the machine spent between `start()` and `stop()`, split into this script with the processes
    it started (`Processes`) and everything else: other work on the machine makes latency figures unreliable."""

    def __init__(self, processes):
        self.processes = processes

    def start(self):
        self.t0 = time.monotonic()
        self.busy0 = _machine_busy_s()
        self.own0 = self._own()
        self.children0 = self._children()
        self.at_start = {process.pid: _process_cpu_s(process.pid) or 0.0 for process in self.processes.running
                         if process.poll() is None}

    @staticmethod
    def _own():
        times = os.times()
        return times.user + times.system

    @staticmethod
    def _children():
        times = os.times()
        return times.children_user + times.children_system

    def stop(self):
        """{"seconds", "machine_cores", "bench_cores", "other_cores"}: average CPUs busy over the interval."""
        alive = {process.pid: process.poll() is None for process in self.processes.running}  # reaps the exited
        seconds = time.monotonic() - self.t0
        busy = _machine_busy_s() - self.busy0
        ours = self._own() - self.own0 + self._children() - self.children0
        for process in self.processes.running:
            before = self.at_start.get(process.pid, 0.0)
            if alive[process.pid]:
                ours += (_process_cpu_s(process.pid) or before) - before
            else:
                ours -= before  # its whole life is in the children's times; only the interval counts
        return {"seconds": round(seconds, 1), "machine_cores": round(busy / seconds, 2),
                "bench_cores": round(ours / seconds, 2), "other_cores": round(max(0.0, busy - ours) / seconds, 2)}


def tail(path, lines=30):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError as error:
        return f"<cannot read {path}: {error}>"


def generate_stubs(protos_dir, out):
    """grpc_tools.protoc on molt's Control API and the etcd v3 subset; returns the imported modules."""
    from grpc_tools import protoc

    well_known = Path(protoc.__file__).parent / "_proto"
    out.mkdir(parents=True, exist_ok=True)
    sources = ["molt/control/v1/control.proto", "etcd/etcd_v3_subset.proto"]
    status = protoc.main(["grpc_tools.protoc", f"-I{protos_dir}", f"-I{well_known}", f"--python_out={out}",
                          f"--grpc_python_out={out}", *sources])
    if status != 0:
        raise BenchError(f"grpc_tools.protoc failed on {sources} (status {status})")
    sys.path.insert(0, str(out))
    return {name: importlib.import_module(module) for name, module in [
        ("control_pb2", "molt.control.v1.control_pb2"), ("control_grpc", "molt.control.v1.control_pb2_grpc"),
        ("etcd_pb2", "etcd.etcd_v3_subset_pb2"), ("etcd_grpc", "etcd.etcd_v3_subset_pb2_grpc")]}


def generate_dapr_stubs(protos_dir, out):
    """grpc_tools.protoc on Dapr's runtime API (dapr/proto/runtime/v1/dapr.proto, as molt serves it) into `out`,
    for the pub/sub load (pubsub_load.py imports dapr.proto.runtime.v1.dapr_pb2 from there)."""
    from grpc_tools import protoc

    well_known = Path(protoc.__file__).parent / "_proto"
    out.mkdir(parents=True, exist_ok=True)
    sources = ["dapr/proto/runtime/v1/dapr.proto", "dapr/proto/runtime/v1/appcallback.proto", "dapr/proto/common/v1/common.proto"]
    status = protoc.main(["grpc_tools.protoc", f"-I{protos_dir}", f"-I{well_known}", f"--python_out={out}",
                          f"--grpc_python_out={out}", *sources])
    if status != 0:
        raise BenchError(f"grpc_tools.protoc failed on {sources} (status {status})")
    return out


# ---------------------------------------------------------------------------------------------------------
# Processes


class Processes:
    """Every process the bench starts; `close()` ends them (SIGTERM, then SIGKILL)."""

    def __init__(self):
        self.running = []

    def spawn(self, args, log_path, stdout=None, **kwargs):
        """Starts `args` in its own session, stdin from /dev/null, stderr (and stdout unless `stdout` is
        given, e.g. subprocess.PIPE) appended to `log_path`."""
        with open(log_path, "ab") as output:
            process = subprocess.Popen(args, stdout=output if stdout is None else stdout,
                                       stderr=subprocess.STDOUT if stdout is None else output,
                                       stdin=subprocess.DEVNULL, start_new_session=True, **kwargs)
        self.running.append(process)
        return process

    @staticmethod
    def end(process, sig=signal.SIGTERM, timeout=20):
        """Sends `sig`, waits up to `timeout` s, then SIGKILLs. Returns the exit code."""
        if process.poll() is None:
            try:
                process.send_signal(sig)
                return process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
            except ProcessLookupError:
                pass
        return process.wait(10)

    def close(self):
        for process in self.running:
            self.end(process, timeout=10)
        self.running = [process for process in self.running if process.poll() is None]


# ---------------------------------------------------------------------------------------------------------
# redis-server


class Redis:
    """A redis-server on a loopback port with its own directory. With `persistent`, every write is appended
    to its AOF and fsync'd before it is acknowledged (`--appendonly yes --appendfsync always`), so a
    `kill()` (SIGKILL) loses no acknowledged write and `start()` on the same port and directory restores
    them."""

    def __init__(self, processes, workdir, persistent=False, port=None):
        self.processes = processes
        self.persistent = persistent
        self.port = port or free_port()
        self.workdir = Path(workdir) / f"redis-{self.port}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "redis.log"
        self.process = None
        self.start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def command(self):
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.persistent
                       else ["--appendonly", "no"])
        return ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence,
                "--dir", str(self.workdir), "--daemonize", "no"]

    def start(self, timeout=15):
        """Starts redis-server (again: same port, same directory) and waits until it answers PING."""
        if self.running():
            raise BenchError(f"redis {self.address} is already running")
        self.process = self.processes.spawn(self.command(), self.log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"redis-server on {self.port} exited with {self.process.returncode}:\n"
                                 f"{tail(self.log_path)}")
            if self.ping():
                return
            time.sleep(0.01)
        raise BenchError(f"redis-server on {self.port} did not answer PING in {timeout} s:\n{tail(self.log_path)}")

    def running(self):
        return self.process is not None and self.process.poll() is None

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self):
        """SIGKILL (no shutdown save), and waits for the exit."""
        return Processes.end(self.process, signal.SIGKILL, 10)

    def stop(self):
        return Processes.end(self.process, signal.SIGTERM, 10)

    def dbsize(self):
        done = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "DBSIZE"], capture_output=True,
                              text=True, timeout=10)
        return int(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip().isdigit() else None


# ---------------------------------------------------------------------------------------------------------
# etcd


class Etcd:
    """A single-member etcd on loopback ports with its own data directory; `stop()`/`start()` end it and
    start it again on the same ports and data."""

    def __init__(self, processes, etcd_bin, workdir, stubs):
        self.processes = processes
        self.etcd_bin = etcd_bin
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.client_port, self.peer_port = free_port(), free_port()
        self.endpoint = f"127.0.0.1:{self.client_port}"
        self.log_path = self.workdir / "etcd.log"
        self.pb = stubs["etcd_pb2"]
        self.grpc = stubs["etcd_grpc"]
        self.process = None
        self.channel = None
        self.kv = None
        self.start()

    def command(self):
        client, peer = f"http://127.0.0.1:{self.client_port}", f"http://127.0.0.1:{self.peer_port}"
        return [self.etcd_bin, "--name", "bench", "--data-dir", str(self.workdir / "etcd-data"),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"bench={peer}", "--initial-cluster-state", "new",
                "--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn",
                "--heartbeat-interval", "50", "--election-timeout", "500"]

    def start(self, timeout=STARTUP_TIMEOUT_S):
        """Starts etcd (again: same ports and data) and waits until a Range answers."""
        if self.process is not None and self.process.poll() is None:
            raise BenchError("etcd is already running")
        self.process = self.processes.spawn(self.command(), self.log_path)
        self._close_channel()
        # A fresh channel per start: no reconnection backoff left over from the previous process.
        self.channel = grpc.insecure_channel(self.endpoint)
        self.kv = self.grpc.KVStub(self.channel)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise BenchError(f"etcd exited with {self.process.returncode}; see {self.log_path}")
            try:
                self.kv.Range(self.pb.RangeRequest(key=b"\0", limit=1), timeout=1)
                return
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise BenchError(f"etcd did not answer in {timeout} s; see {self.log_path}")
                time.sleep(0.05)

    def _close_channel(self):
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def stop(self, timeout=20):
        """SIGTERM (SIGKILL after `timeout`); returns the exit code."""
        self._close_channel()
        return Processes.end(self.process, signal.SIGTERM, timeout)

    def put(self, key, value):
        return self.kv.Put(self.pb.PutRequest(key=key.encode(), value=value.encode()), timeout=10).header.revision


# ---------------------------------------------------------------------------------------------------------
# molt serve


class ApplyStream:
    """One sidecar's Control.WatchApplies, read by a thread: (arrival time.monotonic(), ApplyResult)."""

    def __init__(self, sidecar):
        self.sidecar = sidecar
        request = sidecar.stubs["control_pb2"].WatchAppliesRequest(include_recent=True)
        self.call = sidecar.control.WatchApplies(request)
        self.events = []
        self.error = None
        self.condition = threading.Condition()
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        try:
            for event in self.call:
                arrived = time.monotonic()
                with self.condition:
                    self.events.append((arrived, event))
                    self.condition.notify_all()
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.error = error
        with self.condition:
            self.condition.notify_all()

    def wait_event(self, start, predicate, timeout=EVENT_TIMEOUT_S):
        """The first (arrival, event) from index `start` on that satisfies `predicate`, and its index."""
        deadline = time.monotonic() + timeout
        index = start
        with self.condition:
            while True:
                while index < len(self.events):
                    arrived, event = self.events[index]
                    index += 1
                    if predicate(event):
                        return arrived, event, index
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.error is not None:
                    raise BenchError(f"no apply event on {self.sidecar.name} within {timeout} s (stream error: "
                                     f"{self.error}); log {self.sidecar.log_path}")
                self.condition.wait(remaining)

    def cursor(self):
        """The index the next event will have (to wait only for events that arrive from now on)."""
        with self.condition:
            return len(self.events)

    def close(self):
        self.call.cancel()
        self.thread.join(5)


class Sidecar:
    """A `molt serve` on free loopback ports (or the given `ports`: grpc, http, control, admin) with a
    control stub. Its stdout and stderr go to `<workdir>/<name>.log` (appended)."""

    def __init__(self, processes, stubs, workdir, name, *, molt, plugins_dir, extra_args=(), components=(),
                 ports=None, app_id=APP_ID, log_level="warning"):
        self.name = name
        self.stubs = stubs
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.components_path = self.workdir / "components.json"
        self.components_path.write_text(json.dumps({"components": list(components)}, indent=2))
        self.ports = tuple(ports) if ports else tuple(free_port() for _ in range(4))
        self.grpc_port, self.http_port, self.control_port, self.admin_port = self.ports
        self.log_path = self.workdir / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MOLT_", "DAPR_")) and k != "APP_ID"}
        self.command = [str(molt), "serve", "--plugins-directory", str(plugins_dir),
                        "--components", str(self.components_path),
                        "--grpc-address", f"127.0.0.1:{self.grpc_port}", "--http-address", f"127.0.0.1:{self.http_port}",
                        "--control-address", f"127.0.0.1:{self.control_port}",
                        "--admin-address", f"127.0.0.1:{self.admin_port}",
                        "--app-id", app_id, "--log-level", log_level, *extra_args]
        with open(self.log_path, "ab") as output:
            output.write(f"==== {time.strftime('%H:%M:%S')} {' '.join(self.command)}\n".encode())
        self.spawned_at = time.monotonic()
        self.process = processes.spawn(self.command, self.log_path, env=env, cwd=self.workdir)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.control_port}")
        self.control = stubs["control_grpc"].ControlStub(self.channel)

    @property
    def grpc_address(self):
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def pid(self):
        return self.process.pid

    def alive(self):
        return self.process.poll() is None

    def readiness_status(self):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=1)
            connection.request("GET", "/actuator/health/readiness")
            status = connection.getresponse().status
            connection.close()
            return status
        except OSError:
            return None

    def wait_ready(self, poll_s=0.05, timeout=STARTUP_TIMEOUT_S):
        """Polls readiness until 200; returns the seconds since the process was spawned."""
        deadline = self.spawned_at + timeout
        while True:
            if self.readiness_status() == 200:
                return time.monotonic() - self.spawned_at
            if self.process.poll() is not None:
                raise BenchError(f"molt {self.name} exited with {self.process.returncode}; log {self.log_path}:\n"
                                 f"{tail(self.log_path, 15)}")
            if time.monotonic() > deadline:
                raise BenchError(f"molt {self.name} not ready after {timeout} s; log {self.log_path}")
            time.sleep(poll_s)

    def components(self):
        pb = self.stubs["control_pb2"]
        return {(c.kind, c.name): c for c in self.control.ListComponents(pb.ListComponentsRequest(), timeout=10).components}

    def apply(self, kind, name, metadata, plugin="", version="", timeout=60):
        """Control.Apply of a full definition; returns the ApplyResult (action "failed" on a refused apply)."""
        pb = self.stubs["control_pb2"]
        request = pb.ApplyRequest(kind=kind, name=name, metadata=metadata, plugin=plugin, version=version)
        return self.control.Apply(request, timeout=timeout).result

    def remove(self, kind, name, timeout=60):
        pb = self.stubs["control_pb2"]
        return self.control.RemoveComponent(pb.RemoveComponentRequest(kind=kind, name=name), timeout=timeout).result

    def rss_kib(self):
        return rss_kib(self.process.pid)

    def kill(self):
        """SIGKILL, and waits for the exit (calls in flight on the control channel fail as the process dies)."""
        code = Processes.end(self.process, signal.SIGKILL, 10)
        self.channel.close()
        return code

    def stop(self, timeout=20):
        """SIGTERM; SIGKILL after `timeout` s (logged: molt did not exit on SIGTERM). Returns the exit code."""
        self.channel.close()
        stopping = time.monotonic()
        code = Processes.end(self.process, timeout=timeout)
        if code != 0:
            log(f"   warning: {self.name} did not exit 0 within {timeout} s of SIGTERM "
                f"(exit {code} after {time.monotonic() - stopping:.1f} s); log {self.log_path}")
        return code


def stop_all(sidecars, timeout):
    """SIGTERM to every sidecar at once, then `stop` each; returns the names of those that did not exit 0."""
    for sidecar in sidecars:
        if sidecar.process.poll() is None:
            sidecar.process.send_signal(signal.SIGTERM)
    return [sidecar.name for sidecar in sidecars if sidecar.stop(timeout) != 0]
