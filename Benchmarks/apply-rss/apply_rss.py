"""RSS of a real `molt serve` over many applies through the Control API.

Starts molt with one memorylock component, then applies N full definitions that alternate between two
configurations (--mode reload: each apply a new generation, a state handoff, a switch and a destroy;
--mode in-place: each an apply_config), sampling
VmRSS from /proc after a warm-up and every --every applies. Prints one line per sample and a summary
line; exits 1 when the growth after the warm-up exceeds --max-growth-kib.

  python apply_rss.py --molt MOLT --plugins-dir DIR [--applies 10000] [--every 1000] [--max-growth-kib 2048]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "Sources" / "MoltProtos" / "protos"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def control_stubs(workdir: Path):
    well_known = Path(protoc.__file__).parent / "_proto"
    status = protoc.main(["protoc", f"-I{PROTOS}", f"-I{well_known}", f"--python_out={workdir}", f"--grpc_python_out={workdir}",
                          "molt/control/v1/control.proto"])
    assert status == 0, "protoc failed"
    sys.path.insert(0, str(workdir))
    return (importlib.import_module("molt.control.v1.control_pb2"), importlib.import_module("molt.control.v1.control_pb2_grpc"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--molt", required=True)
    parser.add_argument("--plugins-dir", required=True)
    parser.add_argument("--applies", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--max-growth-kib", type=int, default=2048)
    parser.add_argument("--mode", choices=["reload", "in-place"], default="reload",
                        help="reload: alternate `buckets` (a new generation and a state handoff each time); "
                             "in-place: alternate `sweepIntervalMs` (apply_config)")
    parser.add_argument("--client-deadline-s", type=float, default=0,
                        help="send each Apply with this gRPC deadline (0: none, as `molt apply` does). grpc-swift's server "
                             "keeps about a kilobyte per call that has one until that deadline has passed")
    parser.add_argument("--json", help="write the samples here")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="molt-apply-rss-"))
    pb2, pb2_grpc = control_stubs(workdir)
    components = workdir / "components.json"
    components.write_text(json.dumps({"components": [{"kind": "lock", "name": "locks", "plugin": "memorylock"}]}))
    ports = {name: free_port() for name in ("grpc", "http", "control", "admin")}
    log = open(workdir / "molt.log", "w")
    process = subprocess.Popen([args.molt, "serve", "--plugins-directory", args.plugins_dir, "--components", str(components),
                                "--grpc-address", f"127.0.0.1:{ports['grpc']}", "--http-address", f"127.0.0.1:{ports['http']}",
                                "--control-address", f"127.0.0.1:{ports['control']}", "--admin-address", f"127.0.0.1:{ports['admin']}",
                                "--log-level", "warning"], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{ports['control']}")
        grpc.channel_ready_future(channel).result(timeout=30)
        control = pb2_grpc.ControlStub(channel)
        samples = []
        started = time.monotonic()
        for index in range(1, args.applies + 1):
            key, base = ("buckets", 1024) if args.mode == "reload" else ("sweepIntervalMs", 1000)
            request = pb2.ApplyRequest(kind="lock", name="locks", metadata={key: str(base + index % 2)})
            result = control.Apply(request, timeout=args.client_deadline_s or None).result
            if result.action == "failed":
                print(f"apply {index} failed: {result.error}", file=sys.stderr)
                return 1
            if index == args.warmup or (index > args.warmup and index % args.every == 0):
                samples.append((index, rss_kib(process.pid)))
                print(f"applies={index} rss_kib={samples[-1][1]} elapsed_s={time.monotonic() - started:.1f}", flush=True)
        baseline = samples[0][1]
        growth = samples[-1][1] - baseline
        per_thousand = growth * 1000 / max(1, samples[-1][0] - samples[0][0])
        print(f"summary: applies={args.applies} rss_after_warmup_kib={baseline} rss_end_kib={samples[-1][1]} "
              f"growth_kib={growth} growth_kib_per_1000={per_thousand:.1f}")
        if args.json:
            Path(args.json).write_text(json.dumps({"samples": samples, "growth_kib": growth}))
        return 0 if growth <= args.max_growth_kib else 1
    finally:
        process.terminate()
        process.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
