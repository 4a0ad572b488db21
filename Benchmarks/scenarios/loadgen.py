"""`molt-bench loadgen` as a child process: started with the scenario's targets, it prints
`started <start_unix_ms>` on stdout when its first call is due; SIGINT makes it stop issuing calls, wait for
the calls in flight, verify, write summary.json, calls.csv and acked.tsv into --out and exit 0."""

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from harness import BenchError, Processes, tail

STARTED_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 600.0  # in-flight calls, then the read-back of every acknowledged write


def loadgen_available(binary):
    """True when `binary loadgen --help` works (the subcommand exists)."""
    try:
        done = subprocess.run([str(binary), "loadgen", "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and "--target" in done.stdout + done.stderr


class Loadgen:
    def __init__(self, processes, binary, out_dir, targets, *, rate, clients=4, mix="save=40,get=40,lock=20",
                 verify=(), hold_locks=0, state_store="statestore", lock_store="lockstore", timeout_ms=2000,
                 value_bytes=None, extra_args=()):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.out_dir / "loadgen.log"
        self.command = [str(binary), "loadgen", "--rate", str(rate), "--clients", str(clients), "--duration", "0",
                        "--mix", mix, "--state-store", state_store, "--lock-store", lock_store,
                        "--timeout-ms", str(timeout_ms), "--out", str(self.out_dir)]
        for target in targets:
            self.command += ["--target", target]
        for address in verify:
            self.command += ["--verify-redis", address]
        if hold_locks:
            self.command += ["--hold-locks", str(hold_locks)]
        if value_bytes:
            self.command += ["--value-bytes", str(value_bytes)]
        self.command += list(extra_args)
        self._launch(processes)

    def _launch(self, processes):
        with open(self.log_path, "ab") as output:
            output.write(f"==== {' '.join(self.command)}\n".encode())
        self.process = processes.spawn(self.command, self.log_path, stdout=subprocess.PIPE)
        self.stdout_lines = []
        self.start_unix_ms = None
        self._started = threading.Event()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()

    def _read_stdout(self):
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.stdout_lines.append(line)
            if line.startswith("started ") and self.start_unix_ms is None:
                try:
                    self.start_unix_ms = int(line.split()[1])
                except (IndexError, ValueError):
                    pass
                self._started.set()
        self._started.set()

    def wait_started(self, timeout=STARTED_TIMEOUT_S):
        """Waits for `started <ms>`; returns start_unix_ms. BenchError when the load generator exits first."""
        if not self._started.wait(timeout) or self.start_unix_ms is None:
            code = self.process.poll()
            raise BenchError(f"the load generator did not start (exit {code}); {self.log_path}:\n{tail(self.log_path, 15)}")
        return self.start_unix_ms

    def alive(self):
        return self.process.poll() is None

    def check_alive(self):
        if not self.alive():
            raise BenchError(f"the load generator exited early with {self.process.returncode}; {self.log_path}:\n"
                             f"{tail(self.log_path, 15)}")

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGINT, then waits for its exit and returns summary.json (BenchError when it failed)."""
        self.check_alive()
        stopping = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            Processes.end(self.process, signal.SIGKILL)
            raise BenchError(f"the load generator did not exit within {timeout} s of SIGINT; {self.log_path}")
        self._reader.join(5)
        self.stop_seconds = time.monotonic() - stopping
        if code != 0:
            raise BenchError(f"the load generator exited with {code}; {self.log_path}:\n{tail(self.log_path, 15)}")
        summary_path = self.out_dir / "summary.json"
        if not summary_path.exists() or not (self.out_dir / "calls.csv").exists():
            raise BenchError(f"the load generator wrote no summary.json/calls.csv in {self.out_dir}")
        return json.loads(summary_path.read_text())


class PubsubLoad(Loadgen):
    """pubsub_load.py (publisher + streaming subscriber through molt) as a child process, with the same protocol:
    `started <ms>`, SIGINT, summary.json and calls.csv (one row per message, op `deliver`) in `out_dir`."""

    def __init__(self, processes, out_dir, target, *, stubs_dir, rate, pubsub="pubsub", topic="bench", timeout_ms=5000,
                 drain_s=30):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.out_dir / "loadgen.log"
        self.command = [sys.executable, str(Path(__file__).resolve().parent / "pubsub_load.py"), "--target", target,
                        "--pubsub", pubsub, "--topic", topic, "--rate", str(rate), "--timeout-ms", str(timeout_ms),
                        "--drain-s", str(drain_s), "--stubs", str(stubs_dir), "--out", str(self.out_dir)]
        self._launch(processes)
