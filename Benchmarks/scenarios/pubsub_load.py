"""Publish + consume load for the pub/sub scenarios, run as a child process (like `molt-bench loadgen`).

One asyncio loop, two gRPC channels to molt: a publisher calls PublishEvent open loop at --rate messages/s
(each message is JSON {"seq": N, "sent_us": <Unix µs when sent>}), and a streaming subscriber
(SubscribeTopicEventsAlpha1) records when each message arrives and answers SUCCESS. A stream that breaks is
opened again (counted: `subscriber_reconnects`). It prints `started <start_unix_ms>` when the first message is
due; SIGINT stops publishing, waits for the publishes in flight, then up to --drain-s for every acknowledged
message to arrive, and writes into --out:

- summary.json: published (acknowledged), publish_failed, received (distinct), duplicates (extra deliveries),
  unacked_received (messages whose publish failed or timed out but which arrived anyway), lost (acknowledged,
  never received; also as verify.missing, which the scenarios' analysis counts as lost), publish latency;
- calls.csv in the load generator's format, one row per message (op `deliver`): t_us = when it was due
  (µs since start), latency_us = publish-to-delivery (arrival - sent_us), ok = delivered; a failed publish
  is a row with ok 0 and its error. Lost messages have no row (they have no latency): lost.tsv lists them.

    python pubsub_load.py --target 127.0.0.1:50001 --pubsub pubsub --topic orders --rate 200 --stubs DIR --out DIR
"""

import argparse
import asyncio
import csv
import importlib
import json
import math
import signal
import sys
import time
from pathlib import Path

import grpc


def percentiles(values):
    if not values:
        return None
    ordered = sorted(values)

    def rank(fraction):
        return round(ordered[max(0, math.ceil(fraction * len(ordered)) - 1)], 3)
    return {"count": len(ordered), "p50": rank(0.5), "p99": rank(0.99), "max": round(ordered[-1], 3)}


def message_seq(data):
    """The seq of a delivered message: its data is our JSON, or a CloudEvent envelope holding it."""
    body = json.loads(data)
    if isinstance(body, dict) and "seq" not in body and isinstance(body.get("data"), (dict, str)):
        inner = body["data"]
        body = json.loads(inner) if isinstance(inner, str) else inner
    return int(body["seq"]), int(body["sent_us"])


class Load:
    def __init__(self, args, pb, appcallback, stub_module):
        self.args = args
        self.pb = pb
        self.appcallback = appcallback  # TopicEventResponse lives in appcallback.proto, as in Dapr
        self.stubs = stub_module
        self.start_unix_ms = None
        self.start_mono = None
        self.due_us = {}          # seq -> due time (µs since start)
        self.publish = {}         # seq -> (ok, publish latency ms, error)
        self.arrivals = {}        # seq -> (arrival Unix µs, sent Unix µs) of the first delivery
        self.deliveries = 0
        self.reconnects = 0
        self.stream_errors = []
        self.stopping = asyncio.Event()
        self.all_received = asyncio.Event()

    # -- subscriber

    async def subscribe(self):
        channel = grpc.aio.insecure_channel(self.args.target)
        stub = self.stubs.DaprStub(channel)
        ready = asyncio.Event()
        self.subscribed = ready
        try:
            while True:
                outgoing = asyncio.Queue()
                outgoing.put_nowait(self.pb.SubscribeTopicEventsRequestAlpha1(
                    initial_request=self.pb.SubscribeTopicEventsRequestInitialAlpha1(
                        pubsub_name=self.args.pubsub, topic=self.args.topic)))

                async def requests():
                    while True:
                        item = await outgoing.get()
                        if item is None:
                            return
                        yield item

                call = stub.SubscribeTopicEventsAlpha1(requests())
                try:
                    async for response in call:
                        if response.HasField("initial_response"):
                            ready.set()
                            continue
                        event = response.event_message
                        arrived_us = time.time_ns() // 1000
                        self.deliveries += 1
                        try:
                            seq, sent_us = message_seq(event.data)
                            self.arrivals.setdefault(seq, (arrived_us, sent_us))
                        except (ValueError, KeyError, TypeError):
                            self.stream_errors.append(f"unparsable message {event.data[:80]!r}")
                        outgoing.put_nowait(self.pb.SubscribeTopicEventsRequestAlpha1(
                            event_processed=self.pb.SubscribeTopicEventsRequestProcessedAlpha1(
                                id=event.id, status=self.appcallback.TopicEventResponse(status=0))))  # SUCCESS
                        self.check_done()
                    raise grpc.aio.AioRpcError(grpc.StatusCode.UNKNOWN, None, None, "the stream ended")
                except grpc.aio.AioRpcError as error:
                    outgoing.put_nowait(None)
                    if error.code() == grpc.StatusCode.CANCELLED:
                        return
                    self.reconnects += 1
                    self.stream_errors.append(f"{time.strftime('%H:%M:%S')} {error.code().name}: {error.details()}")
                    print(f"subscriber stream broke ({error.code().name}: {error.details()}); opening it again",
                          file=sys.stderr, flush=True)
                    await asyncio.sleep(0.05)
        finally:
            await channel.close()

    def check_done(self):
        if self.stopping.is_set():
            acked = [seq for seq, (ok, _, _) in self.publish.items() if ok]
            if all(seq in self.arrivals for seq in acked):
                self.all_received.set()

    # -- publisher

    async def publish_one(self, stub, seq):
        sent_us = time.time_ns() // 1000
        data = json.dumps({"seq": seq, "sent_us": sent_us}, separators=(",", ":")).encode()
        started = time.monotonic()
        try:
            await stub.PublishEvent(self.pb.PublishEventRequest(pubsub_name=self.args.pubsub, topic=self.args.topic,
                                                                data=data, data_content_type="application/json"),
                                    timeout=self.args.timeout_ms / 1000)
            self.publish[seq] = (True, (time.monotonic() - started) * 1000, "")
        except grpc.aio.AioRpcError as error:
            self.publish[seq] = (False, (time.monotonic() - started) * 1000, f"{error.code().name}: {error.details()}")

    async def publisher(self):
        channel = grpc.aio.insecure_channel(self.args.target)
        stub = self.stubs.DaprStub(channel)
        interval = 1.0 / self.args.rate
        tasks = set()
        self.start_mono = time.monotonic() + 0.05
        self.start_unix_ms = int((time.time() + 0.05) * 1000)
        print(f"started {self.start_unix_ms}", flush=True)
        seq = 0
        while not self.stopping.is_set():
            due = self.start_mono + seq * interval
            delay = due - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(self.stopping.wait(), delay)
                    break
                except asyncio.TimeoutError:
                    pass
            self.due_us[seq] = int((due - self.start_mono) * 1e6)
            task = asyncio.create_task(self.publish_one(stub, seq))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            seq += 1
        if tasks:
            await asyncio.gather(*tasks)
        await channel.close()

    # -- the run

    async def run(self):
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        subscriber = asyncio.create_task(self.subscribe())
        for _ in range(200):  # the subscription exists before the first publish
            if getattr(self, "subscribed", None) is not None and self.subscribed.is_set():
                break
            if subscriber.done():
                subscriber.result()
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError("the streaming subscription was not answered within 10 s")
        await self.publisher()
        print(f"stopped publishing after {len(self.due_us)} messages; waiting up to {self.args.drain_s:g} s for "
              f"the deliveries", file=sys.stderr, flush=True)
        self.check_done()
        try:
            await asyncio.wait_for(self.all_received.wait(), self.args.drain_s)
        except asyncio.TimeoutError:
            pass
        await asyncio.sleep(self.args.linger_s)  # late duplicates
        subscriber.cancel()
        try:
            await subscriber
        except (asyncio.CancelledError, grpc.aio.AioRpcError):
            pass
        self.write()

    def write(self):
        out = Path(self.args.out)
        out.mkdir(parents=True, exist_ok=True)
        acked = sorted(seq for seq, (ok, _, _) in self.publish.items() if ok)
        failed = sorted(seq for seq, (ok, _, _) in self.publish.items() if not ok)
        lost = [seq for seq in acked if seq not in self.arrivals]
        unacked_received = [seq for seq in failed if seq in self.arrivals]
        with open(out / "calls.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["t_us", "latency_us", "ok", "op", "error", "target"])
            for seq in sorted(self.publish):
                ok, publish_ms, error = self.publish[seq]
                if ok and seq in self.arrivals:
                    arrived_us, sent_us = self.arrivals[seq]
                    writer.writerow([self.due_us[seq], max(0, arrived_us - sent_us), 1, "deliver", "", self.args.target])
                elif not ok:
                    writer.writerow([self.due_us[seq], int(publish_ms * 1000), 0, "deliver", f"publish failed: {error}",
                                     self.args.target])
        (out / "lost.tsv").write_text("seq\tdue_us\n" + "".join(f"{seq}\t{self.due_us[seq]}\n" for seq in lost))
        errors = {}
        for seq in failed:
            errors[self.publish[seq][2]] = errors.get(self.publish[seq][2], 0) + 1
        summary = {
            "start_unix_ms": self.start_unix_ms, "rate": self.args.rate, "clients": 1, "targets": [self.args.target],
            "mix": "publish+subscribe", "duration_s": round(len(self.due_us) / self.args.rate, 1),
            "calls": len(self.publish), "ok": sum(1 for seq in acked if seq in self.arrivals), "failed": len(failed),
            "failed_by_error": errors, "published": len(acked), "publish_failed": len(failed),
            "received": len(self.arrivals), "deliveries": self.deliveries,
            "duplicates": self.deliveries - len(self.arrivals), "lost": len(lost), "lost_seqs": lost[:100],
            "unacked_received": len(unacked_received), "subscriber_reconnects": self.reconnects,
            "stream_errors": self.stream_errors[:20],
            "publish_latency_ms": percentiles([ms for ok, ms, _ in self.publish.values() if ok]),
            "verify": {"acknowledged": len(acked), "missing": len(lost), "mismatched": 0},
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(f"published {len(acked)} (failed {len(failed)}), received {len(self.arrivals)}, duplicates "
              f"{summary['duplicates']}, lost {len(lost)}, subscriber reconnects {self.reconnects}",
              file=sys.stderr, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="molt's app gRPC address")
    parser.add_argument("--pubsub", default="pubsub")
    parser.add_argument("--topic", default="bench")
    parser.add_argument("--rate", type=float, default=200, help="messages published per second (default 200)")
    parser.add_argument("--timeout-ms", type=int, default=5000, help="PublishEvent deadline (default 5000)")
    parser.add_argument("--drain-s", type=float, default=30, help="after the last publish, wait this long at most "
                        "for every acknowledged message (default 30: a reclaim after processingTimeout fits)")
    parser.add_argument("--linger-s", type=float, default=1, help="then this long for late duplicates (default 1)")
    parser.add_argument("--stubs", required=True, help="where dapr/proto/runtime/v1/dapr_pb2*.py were generated")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    sys.path.insert(0, args.stubs)
    pb = importlib.import_module("dapr.proto.runtime.v1.dapr_pb2")
    appcallback = importlib.import_module("dapr.proto.runtime.v1.appcallback_pb2")
    stubs = importlib.import_module("dapr.proto.runtime.v1.dapr_pb2_grpc")
    asyncio.run(Load(args, pb, appcallback, stubs).run())


if __name__ == "__main__":
    main()
