"""Writes molt's link order: the functions a release molt runs from start-up to idle and when serving calls.

Release builds (scripts/release-build.sh) link molt with this list first in `.text` (lld's
--symbol-ordering-file). The kernel maps an executable's code in 64 KiB blocks around every page fault
(fault-around), so code that runs once scattered over the binary's 17 MiB keeps most of it resident; gathered
at the front it fills a few MiB. A stale list costs memory, never correctness: names that no longer exist are
ignored, new functions land in link order after the listed ones.

How the functions are found: the binary is copied to a small ext4 file system on a loop device whose
read-ahead is 0, fresh after a remount, so a page of the binary enters the page cache only when molt touches it
and fault-around finds nothing else to map. After each run the resident pages of the code mapping
(/proc/<pid>/pagemap) are the pages molt ran; every function overlapping one of them is listed (page-granular,
so a few cold neighbours come along). Runs: `molt serve` of examples/demo-components.json idle twice, and once
with a few calls of each kind through both app APIs (HTTP with urllib, gRPC with the Dapr Python SDK).

Needs root (loop device, mount, the device's read_ahead_kb) and build/venv (make build). Two passes give the best
order: generate from a release build, rebuild with it, generate again from that build (functions already listed
stay first, in their order).

    sudo build/venv/bin/python scripts/link-order/generate.py --molt .build-release/x86_64-unknown-linux-gnu/release/molt \
        --plugins-dir plugins.d --output scripts/link-order/molt.order.gz
"""
from __future__ import annotations

import argparse
import bisect
import gzip
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETTLE_S = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ColdFileSystem:
    """An ext4 image on a loop device with read-ahead 0; `fresh()` remounts it, emptying its page cache."""

    def __init__(self, workdir: Path):
        self.image = workdir / "fs.img"
        self.mountpoint = workdir / "mnt"
        self.mountpoint.mkdir()
        subprocess.run(["truncate", "-s", "400M", str(self.image)], check=True)
        subprocess.run(["mkfs.ext4", "-q", str(self.image)], check=True)
        self.device = subprocess.run(["losetup", "-f", "--show", str(self.image)], check=True,
                                     capture_output=True, text=True).stdout.strip()
        Path(f"/sys/block/{Path(self.device).name}/queue/read_ahead_kb").write_text("0")
        subprocess.run(["mount", self.device, str(self.mountpoint)], check=True)

    def fresh(self) -> None:
        subprocess.run(["umount", str(self.mountpoint)], check=True)
        subprocess.run(["mount", self.device, str(self.mountpoint)], check=True)

    def close(self) -> None:
        subprocess.run(["umount", str(self.mountpoint)], check=False)
        subprocess.run(["losetup", "-d", self.device], check=False)


def resident_code_pages(pid: int, binary: Path) -> list[int]:
    """File offsets of the resident pages of `binary`'s executable mapping in process `pid`."""
    offsets = []
    with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        for line in open(f"/proc/{pid}/maps"):
            fields = line.split()
            if len(fields) < 6 or fields[5] != str(binary) or fields[1] != "r-xp":
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            file_offset = int(fields[2], 16)
            pages = (end - start) // 4096
            pagemap.seek(start // 4096 * 8)
            entries = pagemap.read(pages * 8)
            offsets += [file_offset + i * 4096 for i in range(pages) if struct.unpack_from("<Q", entries, i * 8)[0] >> 63]
    return offsets


def call_every_kind(grpc_port: int, http_port: int) -> None:
    base = f"http://127.0.0.1:{http_port}"

    def http(method: str, path: str, body: object | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(base + path, data=data, method=method, headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    for _ in range(3):
        http("POST", "/v1.0/state/statestore", [{"key": "k", "value": "v"}])
        http("GET", "/v1.0/state/statestore/k")
        http("POST", "/v1.0-alpha1/lock/lockstore", {"resourceId": "r", "lockOwner": "o", "expiryInSeconds": 60})
        http("POST", "/v1.0-alpha1/unlock/lockstore", {"resourceId": "r", "lockOwner": "o"})
        http("GET", "/v1.0/metadata")
        http("POST", "/v1.0/publish/pubsub/t", {"a": 1})
        http("DELETE", "/v1.0/state/statestore/k")
    os.environ["DAPR_HTTP_PORT"] = str(http_port)
    os.environ["DAPR_GRPC_PORT"] = str(grpc_port)
    from dapr.clients import DaprClient
    with DaprClient(f"127.0.0.1:{grpc_port}") as client:
        for _ in range(3):
            client.save_state("statestore", "k", "v")
            client.get_state("statestore", "k")
            client.try_lock("lockstore", "r", "o", 60)
            client.unlock("lockstore", "r", "o")
            client.get_metadata()
            client.publish_event("pubsub", "t", "x")
            client.delete_state("statestore", "k")


def run_molt(molt: Path, plugins: Path, workdir: Path, serve_calls: bool) -> list[int]:
    ports = {name: free_port() for name in ("grpc", "http", "control", "admin")}
    log = open(workdir / "molt.log", "ab")
    process = subprocess.Popen([str(molt), "serve", "--plugins-directory", str(plugins),
                                "--components", str(ROOT / "examples" / "demo-components.json"),
                                "--grpc-address", f"127.0.0.1:{ports['grpc']}", "--http-address", f"127.0.0.1:{ports['http']}",
                                "--control-address", f"127.0.0.1:{ports['control']}",
                                "--admin-address", f"127.0.0.1:{ports['admin']}", "--log-level", "warning"],
                               stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ports['admin']}/actuator/health/readiness", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"molt did not become ready; see {workdir / 'molt.log'}")
                time.sleep(0.1)
        if serve_calls:
            call_every_kind(ports["grpc"], ports["http"])
        time.sleep(SETTLE_S)
        return resident_code_pages(process.pid, molt)
    finally:
        process.terminate()
        process.wait(timeout=30)


def defined_functions(binary: Path) -> set[str]:
    listing = subprocess.run(["nm", "--defined-only", str(binary)], check=True, capture_output=True, text=True).stdout
    return {fields[2] for fields in (line.split() for line in listing.splitlines()) if len(fields) == 3 and fields[1] in "tTwW"}


def functions_on_pages(binary: Path, page_offsets: list[int]) -> list[str]:
    """Names of the functions overlapping the given pages (file offsets), in address order."""
    segments = []  # (file offset, virtual address, size) of each LOAD segment
    for line in subprocess.run(["readelf", "-lW", str(binary)], check=True, capture_output=True, text=True).stdout.splitlines():
        fields = line.split()
        if fields and fields[0] == "LOAD":
            segments.append((int(fields[1], 16), int(fields[2], 16), int(fields[4], 16)))
    functions = []  # (address, size, name)
    for line in subprocess.run(["nm", "-S", "--defined-only", str(binary)], check=True, capture_output=True, text=True).stdout.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[2] in "tTwW" and int(fields[1], 16) > 0:
            functions.append((int(fields[0], 16), int(fields[1], 16), fields[3]))
    functions.sort()
    starts = [f[0] for f in functions]
    picked: dict[str, int] = {}
    for offset in page_offsets:
        page = next((offset - o + v for o, v, size in segments if o <= offset < o + size), None)
        if page is None:
            continue
        i = bisect.bisect_right(starts, page + 4095) - 1
        while i >= 0 and functions[i][0] + functions[i][1] > page - (1 << 20):
            address, size, name = functions[i]
            if address < page + 4096 and address + size > page:
                picked.setdefault(name, address)
            i -= 1
    return [name for name, _ in sorted(picked.items(), key=lambda item: item[1])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--molt", type=Path, required=True, help="a release molt built with scripts/release-build.sh")
    parser.add_argument("--plugins-dir", type=Path, required=True, help="plugins for the demo components (in-memory, memorylock, in-memory-pubsub)")
    parser.add_argument("--output", type=Path, default=ROOT / "scripts" / "link-order" / "molt.order.gz")
    parser.add_argument("--fresh", action="store_true",
                        help="ignore the functions already in --output (by default those the binary still has stay first)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root: it mounts a loop device and sets its read-ahead to 0")
    with tempfile.TemporaryDirectory(prefix="molt-link-order-") as tmp:
        workdir = Path(tmp)
        fs = ColdFileSystem(workdir)
        try:
            molt = fs.mountpoint / "molt"
            shutil.copy2(args.molt, molt)
            names: list[str] = []
            for serve_calls in (False, False, True):
                fs.fresh()
                pages = run_molt(molt, args.plugins_dir.resolve(), workdir, serve_calls)
                found = functions_on_pages(molt, pages)
                print(f"{'serving' if serve_calls else 'idle'} run: {len(pages)} code pages resident, {len(found)} functions",
                      file=sys.stderr)
                names += found
        finally:
            fs.close()
    if args.output.exists() and not args.fresh:
        present = defined_functions(args.molt)
        kept = [name for name in gzip.open(args.output, "rt").read().split() if name in present]
        print(f"{len(kept)} functions kept from {args.output}", file=sys.stderr)
        names = kept + names
    unique = list(dict.fromkeys(names))
    with gzip.open(args.output, "wt") as out:
        out.write("\n".join(unique) + "\n")
    print(f"{len(unique)} functions written to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
