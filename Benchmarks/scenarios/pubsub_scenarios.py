"""The pub/sub scenarios (issue 19): redis-streams under a steady publish + consume load (pubsub_load.py: PublishEvent
open loop, a streaming subscription answering SUCCESS), with 100 reloads (`pubsub-reloads`) or a Redis DR switch
(`pubsub-redis-dr`). scenarios.py registers them (strict: a lost message or a failed publish makes `run` exit 1).

Rows of calls.csv are messages: latency is publish-to-delivery (arrival at the subscriber - the send timestamp the
message carries), so the analysis's steady/during windows and p99 ratio are those of delivery latency."""

import json
import re
import subprocess
import time

from harness import BenchError, log, unix_ms

PLUGINS = ("redis-streams-1.0.0.so",)
TOPIC = "bench"
# Reclaim quickly what an old instance read but did not deliver (README of redis-streams: reloads); both are
# reload-only keys, set once and kept.
RECLAIM = {"processingTimeout": "2s", "redeliverInterval": "500ms"}

RELOADS_DESCRIPTION = ("redis-streams under steady publish + consume load (PublishEvent, a streaming subscriber): "
                       "100 reloads (queueDepth 100 ↔ 50, each a new instance taking over the consumer group); "
                       "0 lost and 0 failed publishes required, duplicates counted.")
DR_DESCRIPTION = ("redis-streams under steady publish + consume load on Redis A, B a replica of A (REPLICAOF); "
                  "DR switches: B promoted (REPLICAOF NO ONE), then redisHost → B through the Control API; A re-synced "
                  "as B's replica, B → A, ... Messages stranded on an old primary are counted apart (see README).")
DR_NOTES = [
    "An acknowledged message that never arrived is `lost` (molt's, must be 0) unless its entry was on "
    "an old primary and not on the new one after a switch: written to the old primary after the promotion (the old "
    "generation serves until the switch) or not yet replicated when the replica was promoted. Those are counted as `stranded` and not as "
    "lost: asynchronous replication without a write fence loses them by design, whatever the client."]


def pubsub_def(host, **metadata):
    return {"kind": "pubsub", "name": "pubsub", "plugin": "redis-streams",
            "metadata": {"redisHost": host, **RECLAIM, **metadata}}


def redis_cli(redis, *args):
    done = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(redis.port), *args], capture_output=True,
                          text=True, timeout=30)
    if done.returncode != 0 or done.stdout.startswith(("(error)", "ERR")):
        raise BenchError(f"redis-cli -p {redis.port} {' '.join(args)}: {done.stdout.strip()} {done.stderr.strip()}")
    return done.stdout


def stream_seqs(redis, topic=TOPIC):
    """The seq of every message in `topic`'s stream (the payload is in the entry's CloudEvent `data` field)."""
    return {int(seq) for seq in re.findall(r'\\?"seq\\?"\s*:\s*(\d+)', redis_cli(redis, "--raw", "XRANGE", topic, "-", "+"))}


def wait_replicating(replica, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "master_link_status:up" in redis_cli(replica, "INFO", "replication"):
            return
        time.sleep(0.05)
    raise BenchError(f"redis {replica.address} did not start replicating within {timeout} s")


def dwell(ctx, default):
    return ctx.args.dwell if ctx.args.dwell is not None else (min(default, 0.5) if ctx.args.quick else default)


def note_delivery(ctx):
    """After the load: duplicates, reconnects and publish latency from summary.json into the report's notes."""
    summary = json.loads((ctx.out_dir / "summary.json").read_text())
    publish = summary.get("publish_latency_ms") or {}
    ctx.note(f"{summary['calls']} published ({summary['publish_failed']} publishes failed), "
             f"{summary['received']} received, {summary['lost']} lost, {summary['duplicates']} duplicate deliveries, "
             f"{summary['unacked_received']} received whose publish had failed, subscriber stream reconnects "
             f"{summary['subscriber_reconnects']}; PublishEvent latency p50 {publish.get('p50')} / p99 {publish.get('p99')} "
             f"/ max {publish.get('max')} ms; latency columns are publish-to-delivery.")
    ctx.check("no publish failed", summary["publish_failed"] == 0, f"{summary['publish_failed']} failed: "
              f"{summary.get('failed_by_error')}")


def run_pubsub_reloads(ctx):
    redis = ctx.redis()
    molt = ctx.molt("molt", [pubsub_def(redis.address)], ctx.plugins(*PLUGINS))
    ctx.start_pubsub_load(molt, TOPIC)
    ctx.steady()
    metadata = None
    for index in range(ctx.count()):
        metadata = {"redisHost": redis.address, **RECLAIM, "queueDepth": "50" if index % 2 == 0 else "100"}
        with ctx.event(f"queueDepth={metadata['queueDepth']}", "reload", expect={"reloaded"}) as event:
            event.applied(molt.apply("pubsub", "pubsub", metadata, plugin="redis-streams"))
        ctx.gap()
    ctx.tail()
    running = dict(molt.components()[("pubsub", "pubsub")].metadata)
    ctx.check("pubsub runs with the last queueDepth", running.get("queueDepth") == metadata["queueDepth"],
              f"runs with {running}")
    ctx.note("redis-streams has one version (1.0.0), so every event is a reload (no version swap).")
    ctx.after_load.append(lambda: note_delivery(ctx))


def run_pubsub_redis_dr(ctx):
    """Rounds of DR switches: A → B, then (A re-synced as B's replica) B → A, ..."""
    primary, dr = ctx.redis(), ctx.redis()
    names = {primary.port: "A", dr.port: "B"}
    redis_cli(dr, "REPLICAOF", "127.0.0.1", str(primary.port))
    wait_replicating(dr)
    molt = ctx.molt("molt", [pubsub_def(primary.address)], ctx.plugins(*PLUGINS))
    ctx.start_pubsub_load(molt, TOPIC)
    ctx.steady()
    stranded_candidates = set()  # on an old primary, not on the new one, when the old one was re-synced
    old, new = primary, dr
    for round_number in range(ctx.rounds()):
        label = f"{names[old.port]} → {names[new.port]}"
        with ctx.event(f"round {round_number + 1}: promote {names[new.port]}, redisHost {label}", "DR switch",
                       expect={"reloaded"}) as event:
            redis_cli(new, "REPLICAOF", "NO", "ONE")
            promoted = unix_ms()
            event.applied(molt.apply("pubsub", "pubsub", {"redisHost": new.address, **RECLAIM}, plugin="redis-streams"))
            event.detail(promote_to_applied_ms=unix_ms() - promoted)
        ctx.sleep(dwell(ctx, 2.0))
        if round_number + 1 < ctx.rounds():  # the old primary becomes the new one's replica for the next switch
            stranded_candidates |= stream_seqs(old) - stream_seqs(new)
            redis_cli(old, "REPLICAOF", "127.0.0.1", str(new.port))
            wait_replicating(old)
            ctx.sleep(dwell(ctx, 1.0))
            old, new = new, old
    ctx.tail()
    running = dict(molt.components()[("pubsub", "pubsub")].metadata)
    ctx.check(f"pubsub ends on {names[new.port]}", running.get("redisHost") == new.address, f"runs with {running}")

    def classify():
        """Splits the acknowledged messages that never arrived: stranded on an old primary by a switch, or molt's."""
        path = ctx.out_dir / "summary.json"
        summary = json.loads(path.read_text())
        lost = [int(line.split("\t")[0]) for line in (ctx.out_dir / "lost.tsv").read_text().splitlines()[1:] if line]
        on_new = stream_seqs(new)
        candidates = stranded_candidates | (stream_seqs(old) - on_new)
        stranded = sorted(seq for seq in lost if seq in candidates)
        molt_lost = sorted(set(lost) - set(stranded))
        summary["dr"] = {"switches": ctx.rounds(), "stranded_on_old_primary": len(stranded), "stranded_seqs": stranded[:100],
                         "lost_by_molt": len(molt_lost), "lost_by_molt_seqs": molt_lost[:100],
                         "on_an_old_primary_only": len(candidates), "entries_on_last_primary": len(on_new)}
        summary["verify"]["missing"] = len(molt_lost)
        summary["lost"] = len(molt_lost)
        path.write_text(json.dumps(summary, indent=2) + "\n")
        ctx.note(f"{ctx.rounds()} switches; {len(candidates)} acknowledged messages were only on an old "
                 f"primary after its switch (written after the promotion or not replicated yet), {len(stranded)} of them "
                 f"never arrived (stranded, not counted as lost; the others the old generation delivered before the "
                 f"switch); {len(molt_lost)} lost by molt.")
        log(f"   DR: {len(candidates)} only on an old primary, {len(stranded)} of them stranded, {len(molt_lost)} lost by molt")
        note_delivery(ctx)
    ctx.after_load.append(classify)
