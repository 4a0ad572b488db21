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
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

# The process harness (Processes, Etcd, Sidecar, ApplyStream, ...) is shared with Benchmarks/scenarios.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scenarios"))
from harness import (ApplyStream, BenchError, Etcd, Processes, Sidecar, generate_stubs, log,  # noqa: E402
                     stop_all, summary_ms)

ROOT = Path(__file__).resolve().parents[2]
SIDECARS = 3
PREFIX = "/molt/"


def start_sidecar(args, processes, stubs, workdir, name, extra_args, components=()):
    return Sidecar(processes, stubs, workdir, name, molt=args.molt, plugins_dir=args.plugins_dir,
                   extra_args=extra_args, components=components)


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
    sidecars = [start_sidecar(args, processes, stubs, workdir / f"etcd-sidecar-{i}", f"etcd-sidecar-{i}",
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
    sidecar = start_sidecar(args, processes, stubs, workdir / "file-sidecar", "file-sidecar",
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
    sidecar = start_sidecar(args, processes, stubs, workdir / "restart-0", "restart-0", extra)
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
        sidecar = start_sidecar(args, processes, stubs, workdir / f"restart-{run}", f"restart-{run}", extra)
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
