"""How much of a gRPC call's latency on this machine is the gRPC round trip itself.

One grpcio client (C core) calls, one call at a time:
  - a reference server: grpcio's own server, in Python, answering TryLockAlpha1/GetMetadata with constants;
  - a real `molt serve` (release build) with a memorylock component.
Both serve Dapr's proto (the dapr package's stubs), on loopback. Prints one JSON line with the
p50/p99 in µs per server and method, and the CPU each server process used per call.

    build/venv/bin/python Benchmarks/grpc-reference/grpc_reference.py --molt .build-release/release/molt \
        --plugins-dir plugins.d [--calls 3000]
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent import futures

import grpc
from dapr.proto.runtime.v1 import dapr_pb2_grpc, lock_pb2, metadata_pb2


class ReferenceServer(dapr_pb2_grpc.DaprServicer):
    def TryLockAlpha1(self, request, context):
        return lock_pb2.TryLockResponse(success=True)

    def GetMetadata(self, request, context):
        return metadata_pb2.GetMetadataResponse(id="reference")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(port, pid, calls):
    stub = dapr_pb2_grpc.DaprStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    methods = {
        "GetMetadata": lambda i: stub.GetMetadata(metadata_pb2.GetMetadataRequest(), timeout=10),
        "TryLockAlpha1": lambda i: stub.TryLockAlpha1(lock_pb2.TryLockRequest(
            store_name="lockstore", resource_id=f"r{i}", lock_owner="bench", expiry_in_seconds=5), timeout=10),
    }
    results = {}
    for name, call in methods.items():
        for i in range(200):
            call(-i - 1)
        samples = []
        cpu_before = cpu_seconds(pid)
        for i in range(calls):
            start = time.perf_counter()
            call(i)
            samples.append((time.perf_counter() - start) * 1e6)
        cpu = cpu_seconds(pid) - cpu_before
        samples.sort()
        results[name] = {"p50_us": round(samples[len(samples) // 2], 1),
                         "p99_us": round(samples[int(len(samples) * 0.99) - 1], 1),
                         "server_cpu_us_per_call": round(cpu / calls * 1e6, 1)}
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--molt", required=True)
    parser.add_argument("--plugins-dir", required=True)
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()

    reference_port = free_port()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    dapr_pb2_grpc.add_DaprServicer_to_server(ReferenceServer(), server)
    server.add_insecure_port(f"127.0.0.1:{reference_port}")
    server.start()
    reference = measure(reference_port, os.getpid(), args.calls)  # the client's CPU is included here
    server.stop(0)

    with tempfile.TemporaryDirectory() as directory:
        components = os.path.join(directory, "components.json")
        with open(components, "w") as file:
            json.dump({"components": [{"kind": "lock", "name": "lockstore", "plugin": "memorylock"}]}, file)
        ports = [free_port() for _ in range(4)]
        molt = subprocess.Popen([args.molt, "serve", "--plugins-directory", args.plugins_dir, "--components", components,
                                 "--grpc-address", f"127.0.0.1:{ports[0]}", "--http-address", f"127.0.0.1:{ports[1]}",
                                 "--control-address", f"127.0.0.1:{ports[2]}", "--admin-address", f"127.0.0.1:{ports[3]}",
                                 "--log-level", "warning"])
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    grpc.channel_ready_future(grpc.insecure_channel(f"127.0.0.1:{ports[0]}")).result(timeout=1)
                    break
                except grpc.FutureTimeoutError:
                    if time.monotonic() > deadline or molt.poll() is not None:
                        sys.exit("molt serve did not start")
            time.sleep(0.5)
            measured = measure(ports[0], molt.pid, args.calls)
        finally:
            molt.terminate()
            molt.wait(30)
    print(json.dumps({"calls": args.calls, "reference_grpcio_server": reference, "molt": measured,
                      "note": "reference server CPU includes the Python client's (same process)"}))


if __name__ == "__main__":
    main()
