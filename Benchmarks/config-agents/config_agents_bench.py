"""How long a configuration change takes to reach running sidecars, and how long a restart with a
persisted configuration takes to become ready.

  (a) etcd put -> applied on all sidecars: three `molt serve` watching one etcd; puts of a COMMON-layer
      memorylock component that change maxLocks (applied in place). Latency of one put: from just before
      the Put RPC to the arrival of its apply event on each sidecar's Control.WatchApplies stream (one
      reader thread per sidecar, time.monotonic() at arrival). p50/p99/max over all sidecars (the slowest
      of the three per put) and per sidecar.
  (b) file change -> applied: one molt with --agents-file-directory; atomic-rename rewrites of a component
      file; from just before the rename to the WatchApplies event. molt's file agent scans every 200 ms and
      applies a file once it has seen it unchanged for one scan.
  (c) restart -> ready with N persisted components: a molt with --state-directory gets N memorylock
      components (Control.ApplyBatch), is stopped (SIGTERM) and started again; from spawning the process to
      /actuator/health/readiness answering 200 (polled every 5 ms), then every component must be listed.

Starts its own etcd and molt processes (killed at the end, also on failure). Prints one JSON line on
stdout (and writes it to --output), a short summary on stderr; exits non-zero when a measurement could not
be made.

    build/venv/bin/python Benchmarks/config-agents/config_agents_bench.py --molt .build-release/release/molt \\
        --plugins-dir plugins.d [--output build/bench/config-agents.json] [--puts 100 --file-rewrites 50 ...]
"""

import argparse
import http.client
import importlib
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[2]
SIDECARS = 3
APP_ID = "bench"
PREFIX = "/molt/"
EVENT_TIMEOUT_S = 15.0  # one change until every sidecar reported its apply
STARTUP_TIMEOUT_S = 60.0


class BenchError(Exception):
    """A measurement could not be made."""


def log(message):
    print(message, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(samples, fraction):
    """Nearest-rank percentile of `samples` (not empty)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def summary_ms(samples):
    return {"p50": round(percentile(samples, 0.50), 2), "p99": round(percentile(samples, 0.99), 2),
            "max": round(max(samples), 2), "count": len(samples)}


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


class Processes:
    """Every process the bench starts; `close()` ends them (SIGTERM, then SIGKILL)."""

    def __init__(self):
        self.running = []

    def spawn(self, args, log_path, **kwargs):
        with open(log_path, "ab") as output:
            process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, **kwargs)
        self.running.append(process)
        return process

    @staticmethod
    def end(process, sig=signal.SIGTERM, timeout=20):
        if process.poll() is None:
            process.send_signal(sig)
            try:
                return process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
        return process.wait(10)

    def close(self):
        for process in self.running:
            self.end(process, timeout=10)


class Etcd:
    def __init__(self, processes, etcd_bin, workdir, stubs):
        self.client_port, self.peer_port = free_port(), free_port()
        client, peer = f"http://127.0.0.1:{self.client_port}", f"http://127.0.0.1:{self.peer_port}"
        self.endpoint = f"127.0.0.1:{self.client_port}"
        self.log_path = workdir / "etcd.log"
        self.process = processes.spawn(
            [etcd_bin, "--name", "bench", "--data-dir", str(workdir / "etcd-data"),
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"bench={peer}", "--initial-cluster-state", "new",
             "--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn",
             "--heartbeat-interval", "50", "--election-timeout", "500"], self.log_path)
        self.pb = stubs["etcd_pb2"]
        self.kv = stubs["etcd_grpc"].KVStub(grpc.insecure_channel(self.endpoint))
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise BenchError(f"etcd exited with {self.process.returncode}; see {self.log_path}")
            try:
                self.kv.Range(self.pb.RangeRequest(key=b"\0", limit=1), timeout=1)
                return
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise BenchError(f"etcd did not answer in {STARTUP_TIMEOUT_S} s; see {self.log_path}")
                time.sleep(0.05)

    def put(self, key, value):
        return self.kv.Put(self.pb.PutRequest(key=key.encode(), value=value.encode()), timeout=10).header.revision


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

    def close(self):
        self.call.cancel()
        self.thread.join(5)


class Sidecar:
    """A `molt serve` on free ports with a control stub."""

    def __init__(self, args, processes, stubs, workdir, name, extra_args, components=()):
        self.name = name
        self.stubs = stubs
        workdir.mkdir(parents=True, exist_ok=True)
        components_path = workdir / "components.json"
        components_path.write_text(json.dumps({"components": list(components)}))
        ports = [free_port() for _ in range(4)]
        self.control_port, self.admin_port = ports[2], ports[3]
        self.log_path = workdir / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MOLT_", "DAPR_")) and k != "APP_ID"}
        self.command = [args.molt, "serve", "--plugins-directory", args.plugins_dir, "--components", str(components_path),
                        "--grpc-address", f"127.0.0.1:{ports[0]}", "--http-address", f"127.0.0.1:{ports[1]}",
                        "--control-address", f"127.0.0.1:{ports[2]}", "--admin-address", f"127.0.0.1:{ports[3]}",
                        "--app-id", APP_ID, "--log-level", "warning", *extra_args]
        self.spawned_at = time.monotonic()
        self.process = processes.spawn(self.command, self.log_path, env=env, cwd=workdir)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.control_port}")
        self.control = stubs["control_grpc"].ControlStub(self.channel)

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
                raise BenchError(f"molt {self.name} exited with {self.process.returncode}; log {self.log_path}")
            if time.monotonic() > deadline:
                raise BenchError(f"molt {self.name} not ready after {timeout} s; log {self.log_path}")
            time.sleep(poll_s)

    def components(self):
        pb = self.stubs["control_pb2"]
        return {(c.kind, c.name): c for c in self.control.ListComponents(pb.ListComponentsRequest(), timeout=10).components}

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


def lock_file(name, max_locks):
    return json.dumps({"components": [{"kind": "lock", "name": name, "plugin": "memorylock",
                                       "metadata": {"maxLocks": str(max_locks)}}]})


def is_apply_of(name):
    def predicate(event):
        if event.name != name:
            return False
        if event.action == "failed":
            raise BenchError(f"the apply of {name} failed: {event.error}")
        return event.action == "applied-in-place"
    return predicate


def bench_etcd(args, processes, stubs, workdir):
    etcd = Etcd(processes, args.etcd, workdir, stubs)
    key, name = f"{PREFIX}common/benchlock", "benchlock"
    etcd.put(key, lock_file(name, 1))
    sidecars = [Sidecar(args, processes, stubs, workdir / f"etcd-sidecar-{i}", f"etcd-sidecar-{i}",
                        ["--agents-etcd-endpoints", etcd.endpoint, "--agents-etcd-prefix", PREFIX])
                for i in range(SIDECARS)]
    for sidecar in sidecars:
        sidecar.wait_ready()
        if ("lock", name) not in sidecar.components():
            raise BenchError(f"{sidecar.name} is ready without the etcd component {name}")
    streams = [ApplyStream(sidecar) for sidecar in sidecars]
    try:
        # The history (the first sync's "added") proves each stream is subscribed.
        cursors = [stream.wait_event(0, lambda e: e.name == name)[2] for stream in streams]
        per_sidecar = [[] for _ in sidecars]
        overall = []
        value = 1
        for put in range(args.warmup_puts + args.puts):
            value += 1
            started = time.monotonic()
            etcd.put(key, lock_file(name, value))
            arrivals = []
            for index, stream in enumerate(streams):
                arrived, _, cursors[index] = stream.wait_event(cursors[index], is_apply_of(name))
                arrivals.append((arrived - started) * 1000)
            if put >= args.warmup_puts:
                for index, latency in enumerate(arrivals):
                    per_sidecar[index].append(latency)
                overall.append(max(arrivals))
        for sidecar in sidecars:
            running = dict(sidecar.components()[("lock", name)].metadata)
            if running.get("maxLocks") != str(value):
                raise BenchError(f"{sidecar.name} ends with {running}, expected maxLocks={value}")
    finally:
        for stream in streams:
            stream.close()
        # Not measured here; a sidecar that does not exit promptly on SIGTERM is reported, then killed.
        not_stopped = stop_all(sidecars, args.stop_timeout)
        Processes.end(etcd.process)
    return {"puts": args.puts, "warmup_puts": args.warmup_puts, "sidecars": SIDECARS, "all_sidecars_ms": summary_ms(overall),
            "per_sidecar_ms": [summary_ms(samples) for samples in per_sidecar], "not_exited_on_sigterm": not_stopped}


def bench_file(args, processes, stubs, workdir):
    watched = workdir / "watched"
    watched.mkdir()
    name = "filelock"
    target = watched / f"{name}.json"
    target.write_text(lock_file(name, 1))
    sidecar = Sidecar(args, processes, stubs, workdir / "file-sidecar", "file-sidecar",
                      ["--agents-file-directory", str(watched)])
    sidecar.wait_ready()
    stream = ApplyStream(sidecar)
    try:
        # The file agent adds the component once it saw the file stable: the "added" event.
        _, _, cursor = stream.wait_event(0, lambda e: e.name == name and e.action == "added")
        samples = []
        value = 1
        for rewrite in range(args.warmup_rewrites + args.file_rewrites):
            value += 1
            temporary = watched / f".{name}.json.tmp"  # hidden: the agent ignores it
            temporary.write_text(lock_file(name, value))
            started = time.monotonic()
            os.rename(temporary, target)
            arrived, _, cursor = stream.wait_event(cursor, is_apply_of(name))
            if rewrite >= args.warmup_rewrites:
                samples.append((arrived - started) * 1000)
        running = dict(sidecar.components()[("lock", name)].metadata)
        if running.get("maxLocks") != str(value):
            raise BenchError(f"{sidecar.name} ends with {running}, expected maxLocks={value}")
    finally:
        stream.close()
        not_stopped = stop_all([sidecar], args.stop_timeout)
    return {"rewrites": args.file_rewrites, "warmup_rewrites": args.warmup_rewrites, "ms": summary_ms(samples),
            "not_exited_on_sigterm": not_stopped,
            "note": "the file agent scans every 200 ms and applies a file once seen unchanged for one scan"}


def bench_restart(args, processes, stubs, workdir):
    state = workdir / "state"
    pb = stubs["control_pb2"]
    names = [f"persisted-{i:03d}" for i in range(args.components)]
    extra = ["--state-directory", str(state)]
    sidecar = Sidecar(args, processes, stubs, workdir / "restart-0", "restart-0", extra)
    sidecar.wait_ready()
    batch = sidecar.control.ApplyBatch(pb.ApplyBatchRequest(applies=[
        pb.ApplyRequest(kind="lock", name=name, plugin="memorylock", metadata={"maxLocks": str(10 + i)})
        for i, name in enumerate(names)]), timeout=120)
    if not batch.succeeded:
        failed = [(r.name, r.error) for r in batch.results if r.action == "failed"][:3]
        raise BenchError(f"ApplyBatch of {len(names)} components failed: {failed}")
    if sidecar.stop() != 0:
        raise BenchError(f"molt did not exit 0 on SIGTERM; log {sidecar.log_path}")
    runs = []
    for run in range(1, args.restarts + 1):
        sidecar = Sidecar(args, processes, stubs, workdir / f"restart-{run}", f"restart-{run}", extra)
        runs.append(sidecar.wait_ready(poll_s=0.005) * 1000)
        listed = sidecar.components()
        missing = [name for name in names if ("lock", name) not in listed]
        if missing:
            raise BenchError(f"restart {run}: ready with {len(missing)} of {len(names)} persisted components "
                             f"missing, e.g. {missing[:3]}")
        wrong = [name for i, name in enumerate(names) if dict(listed[("lock", name)].metadata) != {"maxLocks": str(10 + i)}]
        if wrong:
            raise BenchError(f"restart {run}: {len(wrong)} components restored with another config, e.g. {wrong[:3]}")
        if sidecar.stop() != 0:
            raise BenchError(f"restart {run}: molt did not exit 0 on SIGTERM; log {sidecar.log_path}")
    return {"components": args.components, "restarts": args.restarts, "spawn_to_ready_ms": [round(r, 1) for r in runs],
            "median_ms": round(statistics.median(runs), 1), "all_components_listed": True}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--molt", required=True, help="the molt executable")
    parser.add_argument("--plugins-dir", required=True, help="the staged plugins (memorylock)")
    parser.add_argument("--output", help="also write the JSON result to this file")
    parser.add_argument("--etcd", default="/usr/bin/etcd", help="the etcd executable")
    parser.add_argument("--protos-dir", default=str(ROOT / "Sources" / "MoltProtos" / "protos"))
    parser.add_argument("--puts", type=int, default=100)
    parser.add_argument("--warmup-puts", type=int, default=3)
    parser.add_argument("--file-rewrites", type=int, default=50)
    parser.add_argument("--warmup-rewrites", type=int, default=2)
    parser.add_argument("--components", type=int, default=100)
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--stop-timeout", type=float, default=3.0,
                        help="seconds (a) and (b) sidecars get to exit on SIGTERM before SIGKILL (not measured)")
    parser.add_argument("--keep-workdir", action="store_true", help="keep the logs and data (path on stderr)")
    args = parser.parse_args()
    args.molt = str(Path(args.molt).resolve())
    args.plugins_dir = str(Path(args.plugins_dir).resolve())

    workdir = Path(tempfile.mkdtemp(prefix="molt-config-agents-"))
    processes = Processes()
    started = time.monotonic()
    result = {"molt": args.molt}
    try:
        stubs = generate_stubs(args.protos_dir, workdir / "stubs")
        log(f"== (a) etcd put -> applied on {SIDECARS} sidecars, {args.puts} puts")
        result["etcd_put_to_applied"] = bench_etcd(args, processes, stubs, workdir)
        log(f"== (b) file rename -> applied, {args.file_rewrites} rewrites")
        result["file_change_to_applied"] = bench_file(args, processes, stubs, workdir)
        log(f"== (c) restart -> ready with {args.components} persisted components, {args.restarts} restarts")
        result["restart_to_ready"] = bench_restart(args, processes, stubs, workdir)
    except (BenchError, grpc.RpcError, OSError) as error:
        processes.close()
        log(f"config-agents bench FAILED: {error} (logs in {workdir})")
        sys.exit(1)
    finally:
        processes.close()
    result["seconds"] = round(time.monotonic() - started, 1)

    line = json.dumps(result)
    print(line, flush=True)
    if args.output:
        Path(args.output).write_text(line + "\n")
    a, b, c = result["etcd_put_to_applied"], result["file_change_to_applied"], result["restart_to_ready"]
    log(f"(a) etcd put -> applied on all {SIDECARS} sidecars ({a['puts']} puts): p50 {a['all_sidecars_ms']['p50']} ms, "
        f"p99 {a['all_sidecars_ms']['p99']} ms, max {a['all_sidecars_ms']['max']} ms; per sidecar p50/p99/max: "
        + "; ".join(f"{s['p50']}/{s['p99']}/{s['max']}" for s in a["per_sidecar_ms"]))
    log(f"(b) file rename -> applied ({b['rewrites']} rewrites): p50 {b['ms']['p50']} ms, p99 {b['ms']['p99']} ms, "
        f"max {b['ms']['max']} ms")
    log(f"(c) spawn -> ready with {c['components']} persisted components: "
        f"{', '.join(f'{r:.0f}' for r in c['spawn_to_ready_ms'])} ms (median {c['median_ms']} ms), all listed")
    not_stopped = a["not_exited_on_sigterm"] + b["not_exited_on_sigterm"]
    if not_stopped:
        log(f"warning: did not exit within {args.stop_timeout} s of SIGTERM (killed): {', '.join(not_stopped)}")
    log(f"config-agents bench: {result['seconds']} s" + (f"; work directory {workdir}" if args.keep_workdir else ""))
    if not args.keep_workdir:
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


if __name__ == "__main__":
    main()
