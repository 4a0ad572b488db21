"""Named, repeatable benchmark scenarios against real processes (issue "Prove it").

Each scenario starts its own redis-server(s), etcd and `molt serve` processes on free loopback ports, runs
`molt-bench loadgen` against molt's app gRPC port(s) (open loop, --verify-redis on every Redis involved),
waits a warm-up and a steady window, injects its events (applies, reloads, version swaps, DR switches,
restarts, faults) while the load runs, waits a tail, stops the load generator (SIGINT) and writes its
report into build/bench/scenarios/<name>/: the load generator's files (summary.json, calls.csv,
acked.tsv, loadgen.log), events.json, report.json, timeline.csv, plot.png and the tail of molt's log.
`report` (also run at the end of `run all`) writes build/bench/scenarios/summary.json and rewrites the
section of BENCHMARKS.md between <!-- scenarios:begin --> and <!-- scenarios:end -->, copying the plots to
docs/benchmarks/<name>.png.

    bash scripts/python-env.sh build/bench-venv Benchmarks/scenarios/requirements.txt
    build/bench-venv/bin/python Benchmarks/scenarios/scenarios.py list
    build/bench-venv/bin/python Benchmarks/scenarios/scenarios.py run steady [--quick] [--rate 500]
    build/bench-venv/bin/python Benchmarks/scenarios/scenarios.py run all
    build/bench-venv/bin/python Benchmarks/scenarios/scenarios.py report

Exit status of `run`: 0 when every scenario ran (whether or not it met its targets: misses are reported in
report.json and the table), 1 when a scenario could not be run (a process did not start, the load
generator failed, ...), 2 on a usage error.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import grpc  # noqa: E402

import analysis  # noqa: E402
import pubsub_scenarios  # noqa: E402
import report_md  # noqa: E402
from harness import (ROOT, ApplyStream, BenchError, CpuMeter, Etcd, Processes, Redis, Sidecar,  # noqa: E402
                     generate_dapr_stubs, generate_stubs, log, tail, unix_ms, wait_quiet)
from loadgen import Loadgen, PubsubLoad, loadgen_available  # noqa: E402

DEFAULT_OUT = ROOT / "build" / "bench" / "scenarios"
ETCD_PREFIX = "/molt/"
STATE_OPS = analysis.STATE_OPS


# ---------------------------------------------------------------------------------------------------------
# Component definitions (molt's JSON format)


def state_def(host, **metadata):
    return {"kind": "state", "name": "statestore", "plugin": "redis-state", "metadata": {"redisHost": host, **metadata}}


def lock_def(plugin="memorylock", version=None, **metadata):
    definition = {"kind": "lock", "name": "lockstore", "plugin": plugin, "metadata": dict(metadata)}
    if version:
        definition["version"] = version
    return definition


def components_file(*definitions):
    return json.dumps({"components": list(definitions)})


def apply_summary(result):
    """The parts of a Control ApplyResult a report needs."""
    return {"action": result.action, "old_generation": result.old_generation, "new_generation": result.new_generation,
            "old_plugin": result.old_plugin, "new_plugin": result.new_plugin,
            "init_ms": round(result.init_ms, 3), "readiness_ms": round(result.readiness_ms, 3),
            "pause_ms": round(result.pause_ms, 3), "drain_ms": round(result.drain_ms, 3),
            "switch_ms": round(result.switch_ms, 3), "total_ms": round(result.total_ms, 3),
            "calls_still_draining": result.calls_still_draining, "warnings": list(result.warnings),
            "error": result.error, "failure": result.failure, "finished_unix_ms": result.finished_unix_ms}


# ---------------------------------------------------------------------------------------------------------
# Scenario registry


@dataclass
class Spec:
    name: str
    category: str  # "molt" (targets: 0 failed, 0 lost, p99), "fault" (the same, physics excepted), "baseline"
    description: str
    function: object
    rounds: int = 1
    quick_rounds: int = 1
    latency_target: bool = True  # p99 during events <= 2 x steady p99 is a target
    notes: list = field(default_factory=list)
    strict: bool = False  # a lost message or a failed call makes `run` exit 1 (the pub/sub scenarios)


SCENARIOS = {}


def scenario(name, category, description, rounds=1, quick_rounds=1, latency_target=True, notes=(), strict=False):
    def register(function):
        SCENARIOS[name] = Spec(name, category, description, function, rounds, quick_rounds, latency_target, list(notes),
                               strict)
        return function
    return register


# ---------------------------------------------------------------------------------------------------------
# The context of one scenario run


class Event:
    """One injected event, recorded with its wall-clock start and end. Used as a context manager; a
    grpc.RpcError raised inside is recorded as the outcome (the event did not go as expected) and does not
    stop the scenario."""

    def __init__(self, ctx, name, category, expect, label):
        self.ctx = ctx
        self.expect = set(expect) if expect else None
        self.record = {"name": name, "category": category, "label": label or category,
                       "expected_outcome": sorted(self.expect) if self.expect else None,
                       "start_unix_ms": None, "end_unix_ms": None, "duration_ms": None,
                       "outcome": None, "ok": None, "apply": None, "detail": {}}

    def __enter__(self):
        self.record["start_unix_ms"] = unix_ms()
        self._t0 = time.monotonic()
        return self

    @property
    def start_unix_ms(self):
        return self.record["start_unix_ms"]

    def applied(self, result, expect=None, error_contains=None):
        """Records an ApplyResult; ok when its action is expected (and its error holds `error_contains`)."""
        summary = apply_summary(result)
        self.record["apply"] = summary
        self.record["outcome"] = result.action + (f": {result.error}" if result.error else "")
        expect = set(expect) if expect else self.expect
        ok = expect is None or result.action in expect
        if error_contains is not None and error_contains not in result.error:
            ok = False
            self.record["detail"]["error_mismatch"] = f"expected the error to contain {error_contains!r}"
        self.set_ok(ok)
        return result

    def set_ok(self, ok):
        self.record["ok"] = bool(ok) if self.record["ok"] is None else (self.record["ok"] and bool(ok))

    def detail(self, **values):
        self.record["detail"].update(values)

    def __exit__(self, exc_type, exc, traceback):
        self.record["end_unix_ms"] = unix_ms()
        self.record["duration_ms"] = round((time.monotonic() - self._t0) * 1000, 2)
        suppress = False
        if exc is not None and isinstance(exc, grpc.RpcError):
            self.record["outcome"] = f"rpc error {exc.code().name}: {exc.details()}"
            self.record["ok"] = False
            suppress = True
        elif self.record["ok"] is None:
            self.record["ok"] = exc is None
        self.ctx.events.append(self.record)
        mark = "ok" if self.record["ok"] else "NOT AS EXPECTED"
        if not self.record["ok"] or self.ctx.verbose_events:
            log(f"   event {self.record['name']}: {self.record['outcome']} ({self.record['duration_ms']:.0f} ms) {mark}")
        return suppress


class Context:
    def __init__(self, args, spec, stubs, out_dir, workdir):
        self.args = args
        self.spec = spec
        self.stubs = stubs
        self.out_dir = out_dir
        self.workdir = workdir
        self.processes = Processes()
        self.events = []
        self.expected = []
        self.checks = []
        self.notes = list(spec.notes)
        self.sidecars = {}  # name -> the current Sidecar of that name
        self.rss = {"before": {}, "after": {}}
        self.loadgen = None
        self.cpu = CpuMeter(self.processes)
        self.cpu_usage = None
        self.hold_locks = 0
        self.verbose_events = False
        self._plugin_dirs = {}
        self.after_load = []  # functions run once the load generator wrote its files, before the analysis

    # -- counts and durations

    def rounds(self):
        if self.args.rounds:
            return self.args.rounds
        return self.spec.quick_rounds if self.args.quick else self.spec.rounds

    def count(self):
        """How many applies the 100-apply scenarios make."""
        return self.args.events or (10 if self.args.quick else 100)

    def warmup_s(self):
        return self.args.warmup if self.args.warmup is not None else (1.0 if self.args.quick else 2.0)

    def steady_s(self):
        return self.args.steady if self.args.steady is not None else (3.0 if self.args.quick else 10.0)

    def tail_s(self):
        return self.args.tail if self.args.tail is not None else (2.0 if self.args.quick else 5.0)

    # -- processes

    def plugins(self, *files):
        """A private plugins directory holding copies of `files` (from --plugins-dir or --fixtures-dir)."""
        key = tuple(sorted(files))
        if key in self._plugin_dirs:
            return self._plugin_dirs[key]
        directory = self.workdir / f"plugins-{len(self._plugin_dirs)}"
        directory.mkdir(mode=0o755)
        for name in files:
            source = Path(self.args.plugins_dir) / name
            if not source.exists():
                source = Path(self.args.fixtures_dir) / name
            if not source.exists():
                raise BenchError(f"plugin {name} is in neither {self.args.plugins_dir} nor {self.args.fixtures_dir} "
                                 f"(run `make build`)")
            shutil.copy2(source, directory / name)
            (directory / name).chmod(0o755)
        self._plugin_dirs[key] = directory
        return directory

    def redis(self, persistent=False):
        return Redis(self.processes, self.workdir, persistent=persistent)

    def etcd(self):
        return Etcd(self.processes, self.args.etcd, self.workdir / "etcd", self.stubs)

    def molt(self, name, components, plugins, *, state=True, extra_args=(), ports=None, wait=True):
        """Starts `molt serve` (with --state-directory <workdir>/<name>/state unless state=False) and waits
        until it is ready."""
        extra = list(extra_args)
        if state:
            extra += ["--state-directory", str(self.workdir / name / "state")]
        sidecar = Sidecar(self.processes, self.stubs, self.workdir / name, name, molt=self.args.molt,
                          plugins_dir=plugins, extra_args=extra, components=components, ports=ports,
                          log_level=self.args.molt_log_level)
        self.sidecars[name] = sidecar
        if wait:
            sidecar.wait_ready(poll_s=0.01)
        return sidecar

    def start_load(self, targets, verify, hold_locks=0, mix=None):
        for name, sidecar in self.sidecars.items():
            self.rss["before"][name] = {"pid": sidecar.pid, "vmrss_kib": sidecar.rss_kib()}
        self.hold_locks = hold_locks
        self.loadgen = Loadgen(self.processes, self.args.loadgen, self.out_dir, targets, rate=self.args.rate,
                               clients=self.args.clients, mix=mix or self.args.mix, verify=verify,
                               hold_locks=hold_locks, timeout_ms=self.args.timeout_ms)
        start = self.loadgen.wait_started()
        self.cpu.start()
        log(f"   load started ({self.args.rate} calls/s on {', '.join(targets)}), start_unix_ms {start}")
        return start

    def start_pubsub_load(self, sidecar, topic="bench"):
        """pubsub_load.py against `sidecar`'s gRPC port: publishes to pubsub/`topic` at --pubsub-rate and consumes
        through a streaming subscription."""
        for name, running in self.sidecars.items():
            self.rss["before"][name] = {"pid": running.pid, "vmrss_kib": running.rss_kib()}
        rate = self.args.pubsub_rate or (100 if self.args.quick else 200)
        self.loadgen = PubsubLoad(self.processes, self.out_dir, sidecar.grpc_address, stubs_dir=self.args.dapr_stubs,
                                  rate=rate, topic=topic, timeout_ms=self.args.timeout_ms)
        start = self.loadgen.wait_started()
        self.cpu.start()
        log(f"   pub/sub load started ({rate} messages/s published to pubsub/{topic} on {sidecar.grpc_address} and "
            f"consumed by a streaming subscription), start_unix_ms {start}")
        return start

    def sleep(self, seconds):
        """Sleeps, checking that the load generator is still running."""
        deadline = time.monotonic() + seconds
        while True:
            if self.loadgen is not None:
                self.loadgen.check_alive()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(0.1, remaining))

    def steady(self):
        log(f"   warm-up {self.warmup_s():g} s, steady {self.steady_s():g} s")
        self.sleep(self.warmup_s() + self.steady_s())

    def tail(self):
        log(f"   tail {self.tail_s():g} s")
        self.sleep(self.tail_s())

    def gap(self):
        """The pause between two consecutive applies of the 100-apply scenarios."""
        self.sleep(self.args.event_gap_ms / 1000.0)

    # -- events, expectations, checks

    def event(self, name, category, expect=None, label=None):
        return Event(self, name, category, expect, label)

    def expect_failures(self, reason, from_unix_ms, ops=None, until_ok_after_unix_ms=None, to_unix_ms=None):
        """Failed calls of `ops` (all when None) overlapping [from, recovery] are expected (physics or a
        baseline); the recovery is the one the app saw after the cause ended at `until_ok_after_unix_ms`
        (analysis.recovery_end), or `to_unix_ms` when given."""
        self.expected.append({"reason": reason, "from_unix_ms": from_unix_ms, "ops": list(ops) if ops else None,
                              "until_ok_after_unix_ms": until_ok_after_unix_ms, "to_unix_ms": to_unix_ms})

    def check(self, name, ok, detail=""):
        self.checks.append({"name": name, "ok": bool(ok), "detail": detail})
        if not ok:
            log(f"   CHECK FAILED: {name}: {detail}")

    def note(self, text):
        self.notes.append(text)

    # -- end

    def finish(self):
        """Stops the load generator (after recording molt's RSS) and returns its summary."""
        for name, sidecar in self.sidecars.items():
            self.rss["after"][name] = {"pid": sidecar.pid, "vmrss_kib": sidecar.rss_kib() if sidecar.alive() else None}
        self.cpu_usage = self.cpu.stop()
        log(f"   CPUs busy during the load: {self.cpu_usage['machine_cores']} (this bench "
            f"{self.cpu_usage['bench_cores']}, other work {self.cpu_usage['other_cores']})")
        log("   stopping the load generator (it waits for calls in flight, then verifies)")
        summary = self.loadgen.stop()
        if self.hold_locks:
            held = summary.get("held_locks") or {}
            self.check(f"all {self.hold_locks} held locks still held at the end",
                       held.get("still_held") == self.hold_locks and not held.get("lost"),
                       f"held_locks = {held}")
        return summary


# ---------------------------------------------------------------------------------------------------------
# Scenarios

MEMORYLOCK = ("memorylock-1.0.0.so", "memorylock-2.0.0.so", "redis-state-1.0.0.so")
PROBE = ("probe-stateful-1.0.0.so", "redis-state-1.0.0.so")
FAULT_READINESS_TIMEOUT_MS = 2000


def standard_molt(ctx, redis, lock=None, **kwargs):
    return ctx.molt("molt", [state_def(redis.address), lock or lock_def()], ctx.plugins(*MEMORYLOCK), **kwargs)


def start_standard_scenario(ctx, lock=None, hold_locks=0):
    """Redis, molt with memorylock, the load, the steady window."""
    redis = ctx.redis()
    molt = standard_molt(ctx, redis, lock=lock)
    ctx.start_load([molt.grpc_address], [redis.address], hold_locks=hold_locks)
    ctx.steady()
    return redis, molt


def runs_with(running, expected) -> bool:
    """Whether a component's running metadata has every key of `expected` with its value (molt fills in the keys its
    plugin declares with a default, e.g. redis-state's dialTimeout, so there may be more)."""
    return running is not None and all(running.get(key) == value for key, value in expected.items())


def wait_metadata(sidecar, kind, name, expected, timeout=10.0):
    """Polls ListComponents until kind/name runs with `expected` metadata (`runs_with`); returns what it runs with."""
    deadline = time.monotonic() + timeout
    while True:
        status = sidecar.components().get((kind, name))
        running = dict(status.metadata) if status is not None else None
        if runs_with(running, expected) or time.monotonic() > deadline:
            return running
        time.sleep(0.05)


@scenario("steady", "molt", "No events: the reference latency and throughput.")
def run_steady(ctx):
    redis, molt = start_standard_scenario(ctx)
    ctx.tail()


@scenario("in-place", "molt", "100 applies of memorylock's maxLocks, applied in place by the running instance.")
def run_in_place(ctx):
    redis, molt = start_standard_scenario(ctx)
    last = None
    for index in range(ctx.count()):
        last = str(1_000_000 + index)
        with ctx.event(f"maxLocks={last}", "in-place apply", expect={"applied-in-place"}) as event:
            event.applied(molt.apply("lock", "lockstore", {"maxLocks": last}, plugin="memorylock"))
        ctx.gap()
    ctx.tail()
    running = wait_metadata(molt, "lock", "lockstore", {"maxLocks": last})
    ctx.check("lockstore runs with the last maxLocks", runs_with(running, {"maxLocks": last}), f"runs with {running}")


@scenario("reloads", "molt", "100 applies of redis-state's poolSize (not in place: new instance, readiness, "
          "switch, drain) on the state store under load.")
def run_reloads(ctx):
    redis, molt = start_standard_scenario(ctx)
    metadata = None
    for index in range(ctx.count()):
        metadata = {"redisHost": redis.address, "poolSize": "3" if index % 2 == 0 else "4"}
        with ctx.event(f"poolSize={metadata['poolSize']}", "reload", expect={"reloaded"}) as event:
            event.applied(molt.apply("state", "statestore", metadata, plugin="redis-state"))
        ctx.gap()
    ctx.tail()
    running = wait_metadata(molt, "state", "statestore", metadata)
    ctx.check("statestore runs with the last poolSize", runs_with(running, metadata), f"runs with {running}")


@scenario("redis-dr", "molt", "Redis DR switch: the state store's redisHost A → B and back to A, a few rounds; "
          "acknowledged writes verified across A and B.", rounds=3, quick_rounds=1)
def run_redis_dr(ctx):
    primary, standby = ctx.redis(), ctx.redis()
    molt = standard_molt(ctx, primary)
    ctx.start_load([molt.grpc_address], [primary.address, standby.address])
    ctx.steady()
    for round_number in range(ctx.rounds()):
        for label, redis in (("B", standby), ("A", primary)):
            with ctx.event(f"round {round_number + 1}: redisHost → {label}", "DR switch", expect={"reloaded"}) as event:
                event.applied(molt.apply("state", "statestore", {"redisHost": redis.address}, plugin="redis-state"))
            ctx.sleep(self_dwell(ctx, 1.0))
    ctx.tail()
    keys = {"A": primary.dbsize(), "B": standby.dbsize()}
    ctx.check("both Redis servers received writes", all(keys.values()), f"keys per server: {keys}")
    running = wait_metadata(molt, "state", "statestore", {"redisHost": primary.address})
    ctx.check("statestore ends on A", runs_with(running, {"redisHost": primary.address}), f"runs with {running}")


SECRETS = ("local-file-1.0.0.so", "redis-state-1.0.0.so")


def redis_cli(redis, *args):
    done = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(redis.port), *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0 or done.stdout.startswith("(error)") or done.stdout.startswith("ERR"):
        raise BenchError(f"redis-cli {' '.join(args)}: {done.stdout.strip()} {done.stderr.strip()}")
    return done.stdout.strip()


def write_secrets(path, password):
    """Replaces the secrets file by a rename, as configuration management does."""
    staged = path.with_name(path.name + ".new")
    staged.write_text(json.dumps({"redis": {"password": password}}))
    os.replace(staged, path)


def last_apply(sidecar, kind, name):
    """The newest apply result molt keeps for kind/name (ListComponents with history)."""
    pb = sidecar.stubs["control_pb2"]
    for status in sidecar.control.ListComponents(pb.ListComponentsRequest(include_history=True), timeout=10).components:
        if (status.kind, status.name) == (kind, name) and status.history:
            return status.history[-1]
    return None


@scenario("secret-rotation", "molt", "The state store's Redis password comes from a local-file secret store "
          "(secretKeyRef); rotated under load the way Redis ACLs allow (new password added beside the old, the "
          "secrets file replaced, molt re-applies the state store by itself, the old password removed).",
          rounds=10, quick_rounds=2)
def run_secret_rotation(ctx):
    redis = ctx.redis()
    redis_cli(redis, "ACL", "SETUSER", "app", "on", ">password-0", "~*", "&*", "+@all")
    secrets = ctx.workdir / "secrets.json"
    write_secrets(secrets, "password-0")
    store = {"kind": "secretstore", "name": "secrets", "plugin": "local-file", "metadata": {"secretsFile": str(secrets)}}
    state = state_def(redis.address, redisUsername="app",
                      redisPassword={"secretKeyRef": {"store": "secrets", "name": "redis:password"}})
    molt = ctx.molt("molt", [store, state], ctx.plugins(*SECRETS))
    ctx.start_load([molt.grpc_address], [redis.address], mix="save=50,get=50")
    ctx.steady()
    delays = []
    for round_number in range(1, ctx.rounds() + 1):
        old, new = f"password-{round_number - 1}", f"password-{round_number}"
        with ctx.event(f"rotation {round_number}", "secret rotation", expect={"applied-in-place", "reloaded"}) as event:
            redis_cli(redis, "ACL", "SETUSER", "app", f">{new}")
            changed_at = unix_ms()
            write_secrets(secrets, new)
            deadline = time.monotonic() + 30
            result = None
            while time.monotonic() < deadline:
                candidate = last_apply(molt, "state", "statestore")
                if candidate is not None and candidate.finished_unix_ms >= changed_at and candidate.action != "unchanged":
                    result = candidate
                    break
                time.sleep(0.005)
            if result is None:
                event.set_ok(False)
                event.detail(error="molt did not re-apply the state store within 30 s of the secret's change")
            else:
                event.applied(result)
                delays.append(result.finished_unix_ms - changed_at)
                event.detail(change_to_applied_ms=result.finished_unix_ms - changed_at)
            redis_cli(redis, "ACL", "SETUSER", "app", f"<{old}")
        ctx.sleep(self_dwell(ctx, 1.0))
    ctx.tail()
    ctx.check(f"all {ctx.rounds()} rotations re-applied the state store", len(delays) == ctx.rounds(), f"{len(delays)} did")
    if delays:
        ordered = sorted(delays)
        ctx.note(f"Secret change (file replaced) to the state store running with the new password (apply finished), "
                 f"{len(ordered)} rotations: median {ordered[len(ordered) // 2]} ms, max {ordered[-1]} ms "
                 f"(values: {ordered}).")
    running = molt.components()[("state", "statestore")].metadata.get("redisPassword", "")
    ctx.check("status shows the reference, not the password", running.startswith("secretKeyRef(") and "password-" not in running,
              f"redisPassword shows {running!r}")


def self_dwell(ctx, default):
    return ctx.args.dwell if ctx.args.dwell is not None else (min(default, 0.5) if ctx.args.quick else default)


@scenario("lock-swaps", "molt", "100 MemoryLock version swaps 1.0.0 ↔ 2.0.0 (state handed over) with 1000 locks "
          "held through all of them.")
def run_lock_swaps(ctx):
    hold = ctx.args.hold_locks or (200 if ctx.args.quick else 1000)
    _, molt = start_standard_scenario(ctx, lock=lock_def(version="1.0.0"), hold_locks=hold)
    version = "1.0.0"
    for index in range(ctx.count()):
        version = "2.0.0" if index % 2 == 0 else "1.0.0"
        with ctx.event(f"memorylock → {version}", "version swap", expect={"version-swapped"}) as event:
            event.applied(molt.apply("lock", "lockstore", {}, plugin="memorylock", version=version))
        ctx.gap()
    ctx.tail()
    plugin = molt.components()[("lock", "lockstore")].plugin
    ctx.check("lockstore ends on the last version", plugin == f"memorylock@{version}", f"serving {plugin}")


@scenario("close-then-init", "baseline", "Baseline, Dapr's hot-reload order on molt: remove the state store, then "
          "add it back (Control RemoveComponent + Apply), a few rounds. Failed state calls in between are the point.",
          rounds=5, quick_rounds=2)
def run_close_then_init(ctx):
    redis, molt = start_standard_scenario(ctx)
    for round_number in range(ctx.rounds()):
        with ctx.event(f"round {round_number + 1}: remove + add statestore", "remove + add") as event:
            removed = molt.remove("state", "statestore")
            event.detail(remove=apply_summary(removed))
            event.set_ok(removed.action == "removed")
            event.applied(molt.apply("state", "statestore", {"redisHost": redis.address}, plugin="redis-state"),
                          expect={"added"})
            event.detail(remove_ms=removed.total_ms)
        ctx.expect_failures("state store removed until added back (baseline)", event.start_unix_ms, ops=STATE_OPS,
                            until_ok_after_unix_ms=event.record["end_unix_ms"])
        ctx.sleep(self_dwell(ctx, 1.5))
    ctx.tail()


@scenario("restart", "baseline", "Baseline, restart to reconfigure: SIGTERM molt and start it again with the new "
          "config on the same ports (no state directory: the components file is the config), a few rounds.",
          rounds=3, quick_rounds=1, notes=["runs without --state-directory: a restart takes its config from the "
                                           "components file"])
def run_restart(ctx):
    redis = ctx.redis()
    plugins = ctx.plugins(*MEMORYLOCK)
    molt = ctx.molt("molt", [state_def(redis.address), lock_def()], plugins, state=False)
    ctx.start_load([molt.grpc_address], [redis.address])
    ctx.steady()
    for round_number in range(ctx.rounds()):
        pool = "3" if round_number % 2 == 0 else "4"
        with ctx.event(f"round {round_number + 1}: restart with poolSize={pool}", "restart") as event:
            code = molt.stop()
            stopped = unix_ms()
            molt = ctx.molt("molt", [state_def(redis.address, poolSize=pool), lock_def()], plugins, state=False,
                            ports=molt.ports)
            event.detail(sigterm_exit_code=code, sigterm_to_exit_ms=stopped - event.start_unix_ms,
                         spawn_to_ready_ms=round((time.monotonic() - molt.spawned_at) * 1000, 1))
            event.record["outcome"] = f"exit {code}, ready again"
            event.set_ok(code == 0)
        ctx.expect_failures("molt restarting (baseline)", event.start_unix_ms,
                            until_ok_after_unix_ms=event.record["end_unix_ms"])
        ctx.sleep(self_dwell(ctx, 2.0))
    ctx.tail()


@scenario("fleet", "molt", "Three molt processes watching one etcd, the load spread over the three; the state "
          "store's redisHost switched A → B → A through the common layer (etcd puts), each put applied on all three.",
          rounds=3, quick_rounds=1)
def run_fleet(ctx):
    primary, standby = ctx.redis(), ctx.redis()
    etcd = ctx.etcd()
    key = f"{ETCD_PREFIX}common/statestore"
    etcd.put(key, components_file(state_def(primary.address)))
    plugins = ctx.plugins(*MEMORYLOCK)
    extra = ["--agents-etcd-endpoints", etcd.endpoint, "--agents-etcd-prefix", ETCD_PREFIX]
    sidecars = [ctx.molt(f"molt-{i + 1}", [lock_def()], plugins, extra_args=extra, wait=False) for i in range(3)]
    for sidecar in sidecars:
        sidecar.wait_ready(poll_s=0.01)
        if ("state", "statestore") not in sidecar.components():
            raise BenchError(f"{sidecar.name} is ready without the etcd component statestore")
    streams = [ApplyStream(sidecar) for sidecar in sidecars]
    try:
        ctx.start_load([s.grpc_address for s in sidecars], [primary.address, standby.address])
        ctx.steady()
        host = primary.address
        for round_number in range(ctx.rounds()):
            for label, redis in (("B", standby), ("A", primary)):
                host = redis.address
                cursors = [stream.cursor() for stream in streams]
                with ctx.event(f"round {round_number + 1}: etcd put redisHost → {label}", "etcd put → 3 sidecars",
                               expect={"reloaded"}) as event:
                    started = time.monotonic()
                    etcd.put(key, components_file(state_def(host)))
                    arrivals, actions, totals = [], [], []
                    for stream, cursor in zip(streams, cursors):
                        arrived, result, _ = stream.wait_event(
                            cursor, lambda e: e.kind == "state" and e.name == "statestore" and e.action != "unchanged",
                            timeout=30)
                        arrivals.append(round((arrived - started) * 1000, 2))
                        actions.append(result.action)
                        totals.append(round(result.total_ms, 2))
                        event.applied(result)
                    event.record["apply"]["total_ms"] = max(totals)
                    event.detail(put_to_applied_ms=arrivals, actions=actions, apply_total_ms=totals)
                ctx.sleep(self_dwell(ctx, 1.0))
        ctx.tail()
        for sidecar in sidecars:
            running = wait_metadata(sidecar, "state", "statestore", {"redisHost": host})
            ctx.check(f"{sidecar.name} ends on the last redisHost", runs_with(running, {"redisHost": host}), f"runs with {running}")
    finally:
        for stream in streams:
            stream.close()


def probe_molt(ctx, redis, readiness_timeout_ms=FAULT_READINESS_TIMEOUT_MS, **kwargs):
    return ctx.molt("molt", [state_def(redis.address), lock_def(plugin="probe-stateful")], ctx.plugins(*PROBE),
                    extra_args=["--readiness-timeout-ms", str(readiness_timeout_ms)], **kwargs)


def fault_hold(ctx, default=200):
    return ctx.args.hold_locks or (min(default, 100) if ctx.args.quick else default)


def start_probe_scenario(ctx, hold_locks=None, persistent=False, **kwargs):
    """Redis, molt with the probe lock store, the load (holding `hold_locks` locks), the steady window."""
    redis = ctx.redis(persistent=persistent)
    molt = probe_molt(ctx, redis, **kwargs)
    ctx.start_load([molt.grpc_address], [redis.address], hold_locks=fault_hold(ctx) if hold_locks is None else hold_locks)
    ctx.steady()
    return redis, molt


def refused_apply_rounds(ctx, molt, label, category, configs, expect_error=None):
    """Applies each config of `configs` (a function of the round) to the probe lock store, expecting the apply to
    be refused and the old generation, with its config, to keep serving."""
    for round_number in range(ctx.rounds()):
        metadata = configs(round_number)
        before = molt.components()[("lock", "lockstore")]
        with ctx.event(f"round {round_number + 1}: {label(metadata)}", category, expect={"failed"}) as event:
            event.applied(molt.apply("lock", "lockstore", metadata, plugin="probe-stateful"),
                          error_contains=expect_error(metadata) if expect_error else None)
        after = molt.components()[("lock", "lockstore")]
        kept = after.generation == before.generation and dict(after.metadata) == dict(before.metadata)
        event.record["detail"].update(failure=(event.record["apply"] or {}).get("failure"),
                                      generation_before=before.generation,
                                      generation_after=after.generation, old_generation_kept=kept)
        if not kept:
            event.record["ok"] = False
        ctx.check(f"round {round_number + 1}: the old generation keeps serving", kept,
                  f"generation {before.generation} → {after.generation}, metadata {dict(after.metadata)}")
        ctx.sleep(self_dwell(ctx, 0.5))


@scenario("fault-create-fails", "fault", "Applies whose new instance fails init (probe initError=): refused with "
          "the plugin's message, the old instance keeps serving.", rounds=10, quick_rounds=3)
def run_fault_create_fails(ctx):
    refused_message_scenario(ctx, "initError", "init fails")


def refused_message_scenario(ctx, key, category, hold_locks=None):
    """Rounds of applies with `key`=MESSAGE, a key that makes the probe refuse the new instance with MESSAGE
    (initError, importError): each apply must fail with that message while the old instance keeps serving."""
    _, molt = start_probe_scenario(ctx, hold_locks=hold_locks)
    refused_apply_rounds(ctx, molt, lambda m: f"{key}={m[key]}", category,
                         lambda n: {key: f"scenario: {category} in round {n + 1}"}, expect_error=lambda m: m[key])
    ctx.tail()


@scenario("fault-never-ready", "fault", "Applies whose new instance never becomes ready: readiness FAILED "
          "(probe readiness=failed) and readiness timeout (readyAfterPolls beyond --readiness-timeout-ms 2000), "
          "alternately; refused, the old instance keeps serving.", rounds=6, quick_rounds=2)
def run_fault_never_ready(ctx):
    _, molt = start_probe_scenario(ctx)
    refused_apply_rounds(ctx, molt, lambda m: ", ".join(f"{k}={v}" for k, v in m.items()), "never ready",
                         lambda n: {"readiness": "failed"} if n % 2 == 0 else {"readyAfterPolls": "100000000"})
    ctx.tail()


@scenario("fault-late-ready", "fault", "Applies whose new instance is ready only after N readiness polls "
          "(probe readyAfterPolls=N, ~0.5 s): the apply succeeds late, calls keep flowing meanwhile.",
          rounds=10, quick_rounds=3)
def run_fault_late_ready(ctx):
    _, molt = start_probe_scenario(ctx)
    metadata = None
    for round_number in range(ctx.rounds()):
        metadata = {"readyAfterPolls": str(100 + round_number)}
        with ctx.event(f"round {round_number + 1}: readyAfterPolls={metadata['readyAfterPolls']}", "late ready",
                       expect={"reloaded"}) as event:
            event.applied(molt.apply("lock", "lockstore", metadata, plugin="probe-stateful"))
        ctx.sleep(self_dwell(ctx, 0.5))
    ctx.tail()
    running = wait_metadata(molt, "lock", "lockstore", metadata)
    ctx.check("lockstore runs with the last config", runs_with(running, metadata), f"runs with {running}")


@scenario("fault-import-refused", "fault", "Reloads of the stateful probe whose new instance refuses the handed-over "
          "state (importError=): refused, the old instance keeps serving with its 1000 held locks.",
          rounds=10, quick_rounds=3)
def run_fault_import_refused(ctx):
    refused_message_scenario(ctx, "importError", "import refused",
                             hold_locks=ctx.args.hold_locks or (200 if ctx.args.quick else 1000))


@scenario("fault-redis-restart", "fault", "kill -9 of redis-server under load, restarted on the same port from its "
          "AOF (appendfsync always) a few seconds later: state calls fail while it is down and recover without any "
          "apply; lock calls never fail; no acknowledged write lost.", rounds=2, quick_rounds=1, latency_target=False,
          notes=["state calls fail while Redis is dead (physics); the latency target does not apply"])
def run_fault_redis_restart(ctx):
    redis, molt = start_probe_scenario(ctx, persistent=True)
    before = molt.components()[("state", "statestore")]
    down_s = ctx.args.down if ctx.args.down is not None else (1.0 if ctx.args.quick else 2.0)
    for round_number in range(ctx.rounds()):
        with ctx.event(f"round {round_number + 1}: kill -9 redis, restart after {down_s:g} s", "Redis down") as event:
            killed = unix_ms()
            redis.kill()
            ctx.sleep(down_s)
            redis.start()
            event.detail(killed_unix_ms=killed, back_unix_ms=unix_ms())
            event.record["outcome"] = "redis restarted from its AOF"
        ctx.expect_failures("Redis dead (state calls)", killed, ops=STATE_OPS,
                            until_ok_after_unix_ms=event.record["end_unix_ms"])
        ctx.sleep(self_dwell(ctx, 3.0))
    ctx.tail()
    after = molt.components()[("state", "statestore")]
    ctx.check("recovered without any apply (same generation, same last apply)",
              after.generation == before.generation
              and after.last_result.finished_unix_ms == before.last_result.finished_unix_ms,
              f"generation {before.generation} → {after.generation}")


@scenario("fault-etcd-stopped", "fault", "One molt fed by etcd (state store in the common layer); etcd stopped for "
          "a few seconds under load (molt keeps serving the last config), then a put after etcd is back is applied.",
          rounds=1, quick_rounds=1)
def run_fault_etcd_stopped(ctx):
    redis = ctx.redis()
    etcd = ctx.etcd()
    key = f"{ETCD_PREFIX}common/statestore"
    etcd.put(key, components_file(state_def(redis.address)))
    molt = ctx.molt("molt", [lock_def(plugin="probe-stateful")], ctx.plugins(*PROBE),
                    extra_args=["--agents-etcd-endpoints", etcd.endpoint, "--agents-etcd-prefix", ETCD_PREFIX,
                                "--readiness-timeout-ms", str(FAULT_READINESS_TIMEOUT_MS)])
    if ("state", "statestore") not in molt.components():
        raise BenchError("molt is ready without the etcd component statestore")
    stream = ApplyStream(molt)
    try:
        ctx.start_load([molt.grpc_address], [redis.address], hold_locks=fault_hold(ctx))
        ctx.steady()
        down_s = ctx.args.down if ctx.args.down is not None else (2.0 if ctx.args.quick else 5.0)
        metadata = None
        for round_number in range(ctx.rounds()):
            with ctx.event(f"round {round_number + 1}: etcd stopped {down_s:g} s", "etcd down") as event:
                code = etcd.stop()
                ctx.sleep(down_s)
                etcd.start()
                event.detail(etcd_exit_code=code)
                event.record["outcome"] = f"etcd stopped (exit {code}) and started again"
            ctx.sleep(self_dwell(ctx, 1.0))
            pool = "3" if round_number % 2 == 0 else "4"
            metadata = {"redisHost": redis.address, "poolSize": pool}
            cursor = stream.cursor()
            with ctx.event(f"round {round_number + 1}: put poolSize={metadata['poolSize']} after etcd is back",
                           "etcd put after restart", expect={"reloaded"}) as event:
                started = time.monotonic()
                etcd.put(key, components_file(state_def(redis.address, poolSize=pool)))
                arrived, result, _ = stream.wait_event(
                    cursor, lambda e: e.kind == "state" and e.name == "statestore" and e.action != "unchanged", timeout=60)
                event.applied(result)
                event.detail(put_to_applied_ms=round((arrived - started) * 1000, 1))
            ctx.sleep(self_dwell(ctx, 1.0))
        ctx.tail()
        running = wait_metadata(molt, "state", "statestore", metadata)
        ctx.check("statestore runs with the put made after etcd came back", runs_with(running, metadata), f"runs with {running}")
    finally:
        stream.close()


@scenario("fault-sigkill-mid-apply", "fault", "SIGKILL of molt while an apply is in flight (a reload whose new "
          "instance is ready only after ~5 s), restart with the same state directory: it must come back with the "
          "last acknowledged config. Calls fail while molt is down (the restart gap).", rounds=2, quick_rounds=1,
          latency_target=False, notes=["calls fail while molt is dead and restarting (physics): reported as the "
                                       "restart gap; the latency target does not apply"])
def run_fault_sigkill_mid_apply(ctx):
    redis, molt = start_probe_scenario(ctx, hold_locks=0, readiness_timeout_ms=30000)
    for round_number in range(ctx.rounds()):
        acked = {"live.round": str(round_number + 1)}
        with ctx.event(f"round {round_number + 1}: acknowledged apply live.round={round_number + 1}", "acked apply",
                       expect={"applied-in-place"}) as event:
            event.applied(molt.apply("lock", "lockstore", acked, plugin="probe-stateful"))
        ctx.sleep(0.5)
        in_flight = {**acked, "readyAfterPolls": "1000"}
        outcome = {}

        def send():
            try:
                outcome["result"] = molt.apply("lock", "lockstore", in_flight, plugin="probe-stateful", timeout=60)
            except grpc.RpcError as error:
                outcome["error"] = f"{error.code().name}: {error.details()}"

        with ctx.event(f"round {round_number + 1}: SIGKILL with readyAfterPolls=1000 in flight", "SIGKILL mid-apply") as event:
            sender = threading.Thread(target=send, daemon=True)
            sender.start()
            ctx.sleep(0.5)
            still_in_flight = sender.is_alive()
            killed = unix_ms()
            molt.kill()
            sender.join(30)
            event.detail(apply_in_flight_at_kill=still_in_flight, apply_outcome=outcome.get("error") or (
                outcome["result"].action if "result" in outcome else None))
            event.record["outcome"] = f"killed; the in-flight apply ended with {event.record['detail']['apply_outcome']}"
            event.set_ok(still_in_flight)
        running = None
        with ctx.event(f"round {round_number + 1}: restart with the same state directory", "restart after SIGKILL") as event:
            molt = probe_molt(ctx, redis, readiness_timeout_ms=30000, ports=molt.ports)
            running = dict(molt.components()[("lock", "lockstore")].metadata)
            event.detail(restored_metadata=running, spawn_to_ready_ms=round((time.monotonic() - molt.spawned_at) * 1000, 1))
            event.record["outcome"] = f"ready with lockstore {running}"
            event.set_ok(running == acked)
        ctx.check(f"round {round_number + 1}: restarted with the last acknowledged config", running == acked,
                  f"restored {running}, acknowledged {acked}, in flight {in_flight}")
        ctx.expect_failures("molt killed and restarting (restart gap)", killed,
                            until_ok_after_unix_ms=event.record["end_unix_ms"])
        ctx.sleep(self_dwell(ctx, 2.0))
    ctx.tail()


# The pub/sub scenarios (pubsub_scenarios.py): strict, a lost message or a failed publish makes `run` exit 1.
scenario("pubsub-reloads", "molt", pubsub_scenarios.RELOADS_DESCRIPTION, strict=True)(pubsub_scenarios.run_pubsub_reloads)
scenario("pubsub-redis-dr", "molt", pubsub_scenarios.DR_DESCRIPTION, rounds=3, quick_rounds=1,
         notes=pubsub_scenarios.DR_NOTES, strict=True)(pubsub_scenarios.run_pubsub_redis_dr)


# ---------------------------------------------------------------------------------------------------------
# Running


def resolve_binaries(args):
    """--molt and --loadgen: given, or from --bin, or the release build when its molt-bench has loadgen, else
    the debug build."""
    candidates = [Path(args.bin)] if args.bin else [ROOT / ".build-release" / "release", ROOT / ".build" / "debug"]
    if args.molt and args.loadgen:
        return
    for directory in candidates:
        molt, bench = directory / "molt", directory / "molt-bench"
        if (args.molt or molt.exists()) and (args.loadgen or loadgen_available(bench)):
            args.molt = args.molt or str(molt)
            args.loadgen = args.loadgen or str(bench)
            return
    raise BenchError("no molt-bench with the loadgen subcommand in " + ", ".join(str(c) for c in candidates)
                     + " (build it, or give --loadgen/--molt)")


def command_line():
    """How this driver was started, with the interpreter (relative to the repository when inside it)."""
    python = Path(sys.executable)
    try:
        python = python.relative_to(ROOT)
    except ValueError:
        pass
    return " ".join([str(python), *sys.argv])


def machine_info():
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        memory_kib = None
    revision = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True)
    return {"cpu": cpu, "cpus": os.cpu_count(), "memory_gib": round(memory_kib / 1048576, 1) if memory_kib else None,
            "kernel": platform.release(), "python": platform.python_version(),
            "source": revision.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else ""),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def run_one(name, args, stubs):
    spec = SCENARIOS[name]
    out_dir = Path(args.out) / name
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"molt-scenario-{name}-"))
    ctx = Context(args, spec, stubs, out_dir, workdir)
    log(f"== {name}: {spec.description}")
    started = time.monotonic()
    load_before = [round(x, 2) for x in os.getloadavg()]
    try:
        spec.function(ctx)
        if ctx.loadgen is None:
            raise BenchError("the scenario started no load")
        ctx.finish()
        for function in ctx.after_load:
            function()
    finally:
        for sidecar_name, sidecar in ctx.sidecars.items():
            if sidecar.alive():
                sidecar.stop(timeout=10)
        ctx.processes.close()
        for sidecar_name, sidecar in ctx.sidecars.items():
            (out_dir / f"molt-{sidecar_name}.log").write_text(tail(sidecar.log_path, 3000) + "\n")
        (out_dir / "events.json").write_text(json.dumps(ctx.events, indent=2) + "\n")
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"   work directory kept: {workdir}")
    meta = {"scenario": name, "category": spec.category, "description": spec.description, "quick": args.quick,
            "warmup_ms": ctx.warmup_s() * 1000, "events": ctx.events, "expected_failures": ctx.expected,
            "checks": ctx.checks, "rss": ctx.rss, "latency_target": spec.latency_target, "notes": ctx.notes,
            "molt": args.molt, "loadgen": args.loadgen, "command": command_line(),
            "extra": {"seconds": round(time.monotonic() - started, 1), "machine": machine_info(),
                      "timeout_ms": args.timeout_ms, "cpu": ctx.cpu_usage,
                      "load_average": {"at_start": load_before, "at_end": [round(x, 2) for x in os.getloadavg()]}}}
    # Everything the analysis needs besides the load generator's files: `report --reanalyze` starts from it.
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    report = analysis.analyze(out_dir, meta)
    verdict = {True: "targets met", False: "TARGETS MISSED", None: "baseline"}[report["pass"]]
    steady, during = report["latency_ms"]["steady"], report["latency_ms"]["during"]
    log(f"   {name}: {report['calls']} calls, {report['failed']} failed ({report['failed_unexpected']} unexpected), "
        f"{report['lost']} lost; p99 steady {steady['p99'] if steady else '-'} ms, during "
        f"{during['p99'] if during else '-'} ms; longest gap {report['longest_gap_ms']} ms — {verdict}")
    for miss in report["misses"]:
        log(f"     miss: {miss}")
    if spec.strict:
        load = json.loads((out_dir / "summary.json").read_text())
        problems = [f"{count} {what}" for count, what in ((report["lost"], "messages lost"),
                                                         (load.get("publish_failed", report["failed"]), "publishes failed"))
                    if count]
        if problems:
            raise StrictFailure(f"{name} FAILED: {', '.join(problems)} (see {out_dir / 'summary.json'} and lost.tsv)")
    return report


class StrictFailure(Exception):
    """A strict scenario ran but lost a message or failed a call: `run` exits 1 (its report is kept)."""


def command_run(args):
    names = list(SCENARIOS) if args.names == ["all"] else args.names
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        log(f"unknown scenario(s): {', '.join(unknown)}; `scenarios.py list` lists them")
        return 2
    try:
        resolve_binaries(args)
    except BenchError as error:
        log(f"cannot run: {error}")
        return 1
    args.molt = str(Path(args.molt).resolve())
    args.loadgen = str(Path(args.loadgen).resolve())
    log(f"molt {args.molt}\nloadgen {args.loadgen}")
    stubs_dir = Path(tempfile.mkdtemp(prefix="molt-scenario-stubs-"))
    could_not_run, strict_failures = [], []
    try:
        stubs = generate_stubs(args.protos_dir, stubs_dir)
        args.dapr_stubs = str(generate_dapr_stubs(args.protos_dir, stubs_dir / "dapr-stubs"))
        for name in names:
            error_path = Path(args.out) / name / "error.json"
            if args.wait_quiet:
                busy, quiet = wait_quiet(report_md.BUSY_OTHER_CORES, args.wait_quiet)
                log(f"   machine {'quiet' if quiet else 'still busy after ' + str(args.wait_quiet) + ' s'}: "
                    f"{busy} CPUs busy before {name}")
            try:
                run_one(name, args, stubs)
            except StrictFailure as failure:
                log(f"   {failure}")
                strict_failures.append(str(failure))
            except Exception as error:  # noqa: BLE001 - any failure: this scenario could not run, go on with the next
                if isinstance(error, grpc.RpcError):
                    detail = f"{error.code().name}: {error.details()}"
                elif isinstance(error, (BenchError, OSError)):
                    detail = str(error)
                else:
                    detail = "".join(traceback.format_exception(error))
                log(f"   {name} COULD NOT RUN: {detail}")
                error_path.parent.mkdir(parents=True, exist_ok=True)
                error_path.write_text(json.dumps({"scenario": name, "error": detail, "unix_ms": unix_ms()}) + "\n")
                stale = Path(args.out) / name / "report.json"
                if stale.exists():
                    stale.unlink()
                could_not_run.append(name)
    finally:
        shutil.rmtree(stubs_dir, ignore_errors=True)
    summary = report_md.write_summary(Path(args.out), machine_info(), command_line(), SCENARIOS)
    log(f"summary: {Path(args.out) / 'summary.json'}")
    if args.names == ["all"] and not args.no_report:
        report_md.update_benchmarks(summary, Path(args.out), Path(args.benchmarks), Path(args.docs))
        log(f"rewrote the scenarios section of {args.benchmarks}")
    for failure in strict_failures:
        log(failure)
    if could_not_run:
        log(f"could not run: {', '.join(could_not_run)}")
    return 1 if could_not_run or strict_failures else 0


def command_report(args):
    if args.reanalyze:
        for name in SCENARIOS:
            meta_path = Path(args.out) / name / "meta.json"
            if meta_path.exists() and (Path(args.out) / name / "summary.json").exists():
                analysis.analyze(meta_path.parent, json.loads(meta_path.read_text()))
                log(f"reanalyzed {name}")
    summary = report_md.write_summary(Path(args.out), machine_info(), None, SCENARIOS)
    report_md.update_benchmarks(summary, Path(args.out), Path(args.benchmarks), Path(args.docs))
    log(f"wrote {Path(args.out) / 'summary.json'} and the scenarios section of {args.benchmarks}")
    return 0


def command_list(_args):
    for spec in SCENARIOS.values():
        print(f"{spec.name:26} {spec.category:9} {spec.description}")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the scenarios")
    run = sub.add_parser("run", help="run scenarios: NAME... or all")
    run.add_argument("names", nargs="+", metavar="NAME")
    run.add_argument("--rate", type=int, default=500, help="calls/s in total (default 500)")
    run.add_argument("--clients", type=int, default=4, help="load generator connections (default 4)")
    run.add_argument("--mix", default="save=40,get=40,lock=20")
    run.add_argument("--timeout-ms", type=int, default=2000, help="per-call deadline (default 2000)")
    run.add_argument("--quick", action="store_true", help="small counts and short windows: a smoke run")
    run.add_argument("--warmup", type=float, help="seconds of warm-up before the steady window (2; quick 1)")
    run.add_argument("--steady", type=float, help="seconds of steady window before the events (10; quick 3)")
    run.add_argument("--tail", type=float, help="seconds after the events (5; quick 2)")
    run.add_argument("--events", type=int, help="applies of the 100-apply scenarios (100; quick 10)")
    run.add_argument("--rounds", type=int, help="rounds of the round-based scenarios (each has its default)")
    run.add_argument("--dwell", type=float, help="seconds between rounds (each scenario has its default)")
    run.add_argument("--down", type=float, help="seconds Redis/etcd stay down in the fault scenarios")
    run.add_argument("--event-gap-ms", type=float, default=50, help="pause between consecutive applies (default 50)")
    run.add_argument("--pubsub-rate", type=int, help="messages/s of the pub/sub scenarios (200; quick 100)")
    run.add_argument("--hold-locks", type=int, help="locks held through the run (lock-swaps 1000, faults 200/1000)")
    run.add_argument("--bin", help="directory of molt and molt-bench (default: the release build if its molt-bench "
                                   "has loadgen, else .build/debug)")
    run.add_argument("--molt", help="the molt executable")
    run.add_argument("--loadgen", help="the molt-bench executable (with the loadgen subcommand)")
    run.add_argument("--keep-workdir", action="store_true", help="keep the processes' logs and data")
    run.add_argument("--molt-log-level", default="warning", help="molt's --log-level (default warning)")
    run.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                     help="before each scenario wait up to SECONDS until other work on the machine uses less than "
                          f"{report_md.BUSY_OTHER_CORES} CPUs (default 0: do not wait)")
    run.add_argument("--no-report", action="store_true", help="with `all`: do not rewrite BENCHMARKS.md")
    report = sub.add_parser("report", help="summary.json and the BENCHMARKS.md section from the reports")
    report.add_argument("--reanalyze", action="store_true",
                        help="first recompute every report.json, timeline.csv and plot.png from the stored files")
    for command in (run, report):
        command.add_argument("--out", default=str(DEFAULT_OUT), help="reports directory (default build/bench/scenarios)")
        command.add_argument("--benchmarks", default=str(ROOT / "BENCHMARKS.md"))
        command.add_argument("--docs", default=str(ROOT / "docs" / "benchmarks"), help="where the plots are copied")
    run.add_argument("--plugins-dir", default=str(ROOT / "plugins.d"))
    run.add_argument("--fixtures-dir", default=str(ROOT / "build" / "fixtures"))
    run.add_argument("--etcd", default="/usr/bin/etcd")
    run.add_argument("--protos-dir", default=str(ROOT / "Sources" / "MoltProtos" / "protos"))
    args = parser.parse_args()

    # SIGTERM ends the driver like Ctrl-C: the `finally` blocks end every process it started.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    handlers = {"list": command_list, "run": command_run, "report": command_report}
    try:
        sys.exit(handlers[args.command](args))
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
