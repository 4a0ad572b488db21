"""Fixtures of the API tests: real `redis-server` and `molt serve` processes, driven only through
their network APIs (the official Dapr Python SDK, grpcio clients of the control plane, curl).

Environment (set by `make test-api`, see Tests/API/api.mk):
  MOLT_BIN          the molt executable
  MOLT_PLUGINS_DIR  the staged plugins (memorylock-*.so, redis-state-*.so)
  MOLT_FIXTURES_DIR the test fixture plugins (probe-1.0.0.so, ...)
  MOLT_ROOT         the repository (for the .proto files)

Every process a fixture starts is killed at teardown, also when the test failed. When a test fails,
the tail of the stderr log of every molt still running is added to the report.

etcd (`/usr/bin/etcd`, Debian's etcd-server) is driven through grpcio with stubs generated at session start
from Sources/MoltProtos/protos/etcd/etcd_v3_subset.proto (etcd's own wire format); no etcdctl.
"""

from __future__ import annotations

import http.client
import importlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest

ROOT = Path(os.environ.get("MOLT_ROOT") or Path(__file__).resolve().parents[2])
PROTOS_DIR = ROOT / "Sources" / "MoltProtos" / "protos"

STARTUP_TIMEOUT_S = 30.0  # molt serve until /v1.0/healthz answers 204
RPC_TIMEOUT_S = 15.0  # any single gRPC call of the tests
CURL_TIMEOUT_S = 10.0
SDK_SCRIPT_TIMEOUT_S = 90.0  # one Dapr SDK scenario subprocess
STOP_TIMEOUT_S = 20.0  # SIGTERM until exit, before SIGKILL
ETCD_BIN = os.environ.get("MOLT_ETCD_BIN", "/usr/bin/etcd")
ETCD_STARTUP_TIMEOUT_S = 30.0  # etcd until a Range answers

CONTROL_TOKEN_HEADER = "molt-control-token"
API_TOKEN_HEADER = "dapr-api-token"

# molt processes currently running, for the failure report.
_RUNNING_MOLTS: list["Molt"] = []


# ---------------------------------------------------------------------------------------------
# Environment


def _env_path(variable: str) -> Path:
    value = os.environ.get(variable)
    if not value:
        pytest.fail(f"{variable} is not set: run the API tests with `make test-api`", pytrace=False)
    path = Path(value)
    if not path.exists():
        pytest.fail(f"{variable}={value} does not exist (run `make build` first)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def molt_bin() -> Path:
    return _env_path("MOLT_BIN")


@pytest.fixture(scope="session")
def plugins_dir() -> Path:
    return _env_path("MOLT_PLUGINS_DIR")


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return _env_path("MOLT_FIXTURES_DIR")


_DECLARED_DEFAULTS: dict[str, dict[str, str]] = {}


def declared_defaults(plugin: str) -> dict[str, str]:
    """The defaults plugin `name@version` (of the plugins directory or the fixtures) declares: molt fills
    them in before init and apply_config, and ComponentStatus.metadata shows them as running."""
    if not _DECLARED_DEFAULTS:
        for directory in (os.environ.get("MOLT_PLUGINS_DIR"), os.environ.get("MOLT_FIXTURES_DIR")):
            if not directory:
                continue
            listed = subprocess.run([str(_env_path("MOLT_BIN")), "plugin", "list", "--plugins-directory", directory, "--json"],
                                    capture_output=True, text=True, timeout=60)
            for entry in json.loads(listed.stdout or "{}").get("plugins", []):
                _DECLARED_DEFAULTS.setdefault(f"{entry['name']}@{entry['version']}", {
                    key["name"]: key["defaultValue"] for key in entry["configKeys"] if key.get("defaultValue") is not None})
    return _DECLARED_DEFAULTS.get(plugin, {})


def running_config(plugin: str, given: dict[str, str]) -> dict[str, str]:
    """The configuration `plugin` (name@version) runs with when given `given`: its declared defaults, then `given`."""
    return {**declared_defaults(plugin), **given}


# ---------------------------------------------------------------------------------------------
# Ports and small network helpers


def pick_free_port() -> int:
    """A loopback TCP port that was free a moment ago (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def free_port():
    """The function that picks a free loopback port: `port = free_port()`."""
    return pick_free_port


def _tcp_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int:
    """Sends `sig`, waits up to `timeout`, then SIGKILLs. Returns the exit code."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
        except ProcessLookupError:
            pass
    return proc.wait(timeout=10)


def _tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        return f"<cannot read {path}: {error}>"
    return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------------------------------------
# redis-server


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cli(self, *args: str) -> str:
        """Runs `redis-cli -p PORT ARGS...` and returns its output, stripped."""
        done = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args],
                              capture_output=True, text=True, timeout=10)
        assert done.returncode == 0, f"redis-cli {args} failed: {done.stderr}"
        return done.stdout.strip()

    def keys(self) -> list[str]:
        out = self.cli("--scan", "--pattern", "*")
        return [line for line in out.splitlines() if line]

    def stop(self) -> None:
        _stop_process(self.process, timeout=10)


class RedisFactory:
    """Starts redis-server processes on free ports; `close()` kills them all."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.servers: list[RedisServer] = []

    def __call__(self) -> RedisServer:
        for _attempt in range(3):
            port = pick_free_port()
            workdir = self.directory / f"redis-{port}"
            workdir.mkdir(parents=True, exist_ok=True)
            log_path = workdir / "redis.log"
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                     "--dir", str(workdir), "--daemonize", "no"],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            server = RedisServer(port, process, log_path)
            self.servers.append(server)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and process.poll() is None:
                if self._pong(port):
                    return server
                time.sleep(0.05)
            server.stop()
            # The port may have been taken between picking and binding: try another one.
        pytest.fail(f"redis-server did not start; its log:\n{_tail(log_path)}", pytrace=False)

    @staticmethod
    def _pong(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def close(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def redis_server(tmp_path):
    """Factory: `redis = redis_server()` starts a redis-server on a free port (killed at teardown)."""
    factory = RedisFactory(tmp_path)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def module_redis_server(tmp_path_factory):
    """Like `redis_server`, for processes shared by the tests of one module."""
    factory = RedisFactory(tmp_path_factory.mktemp("redis"))
    yield factory
    factory.close()


# ---------------------------------------------------------------------------------------------
# Polling


def wait_for(condition, what: str, timeout: float = 15.0, interval: float = 0.05):
    """Calls `condition()` until it returns something truthy (returned) or `timeout` seconds passed
    (AssertionError naming `what`, with the last value seen)."""
    deadline = time.monotonic() + timeout
    value = None
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last seen: {value!r})")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Generated gRPC stubs of the control plane


@pytest.fixture(scope="session")
def protos(tmp_path_factory):
    """Python modules generated with grpc_tools.protoc from Sources/MoltProtos/protos, at session start:
    lifecycle_pb2/_grpc (Layotto's Lifecycle API), control_pb2/_grpc (molt's Control API) and
    etcd_pb2/_grpc (the subset of etcd's v3 API: KV Range/Put/DeleteRange/Compact, Watch)."""
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("protos")
    well_known = Path(protoc.__file__).parent / "_proto"
    sources = ["spec/proto/runtime/v1/lifecycle.proto", "molt/control/v1/control.proto", "etcd/etcd_v3_subset.proto"]
    status = protoc.main(["grpc_tools.protoc", f"-I{PROTOS_DIR}", f"-I{well_known}", f"--python_out={out}",
                          f"--grpc_python_out={out}", *sources])
    assert status == 0, f"grpc_tools.protoc failed on {sources} (status {status}); see the captured stderr"
    sys.path.insert(0, str(out))
    try:
        return SimpleNamespace(
            lifecycle_pb2=importlib.import_module("spec.proto.runtime.v1.lifecycle_pb2"),
            lifecycle_pb2_grpc=importlib.import_module("spec.proto.runtime.v1.lifecycle_pb2_grpc"),
            control_pb2=importlib.import_module("molt.control.v1.control_pb2"),
            control_pb2_grpc=importlib.import_module("molt.control.v1.control_pb2_grpc"),
            etcd_pb2=importlib.import_module("etcd.etcd_v3_subset_pb2"),
            etcd_pb2_grpc=importlib.import_module("etcd.etcd_v3_subset_pb2_grpc"),
        )
    finally:
        sys.path.remove(str(out))


# ---------------------------------------------------------------------------------------------
# etcd


# etcd servers currently running, for the failure report.
_RUNNING_ETCDS: list["EtcdServer"] = []


def prefix_range_end(prefix: bytes | str) -> bytes:
    """etcd's range_end that selects every key starting with `prefix`: the prefix with its last byte + 1
    (trailing 0xff bytes are dropped first; an empty or all-0xff prefix gives b"\\0", every key)."""
    end = bytearray(prefix.encode() if isinstance(prefix, str) else prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def components_text(*components: dict) -> str:
    """The text of a component file in molt's JSON format holding `components`."""
    return json.dumps({"components": list(components)})


def _as_bytes(value) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dict):  # one component definition
        return components_text(value).encode()
    if isinstance(value, (list, tuple)):  # several component definitions
        return components_text(*value).encode()
    raise TypeError(f"cannot store a {type(value).__name__} in etcd")


class EtcdStartError(Exception):
    pass


class EtcdServer:
    """One single-member etcd (`/usr/bin/etcd`) on fixed loopback ports with its own data directory.
    `stop()`/`kill()` end the process; `start()` starts it again on the same ports and data directory.
    put/delete/compact/revision talk to it with grpcio (etcd's own v3 API)."""

    def __init__(self, protos, workdir: Path, name: str, client_port: int, peer_port: int):
        self.protos = protos
        self.workdir = workdir
        self.name = name
        self.client_port = client_port
        self.peer_port = peer_port
        self.data_dir = workdir / "data"
        self.log_path = workdir / "etcd.log"
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self._channel: grpc.Channel | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def molt_args(self, prefix: str | None = None) -> list[str]:
        """The `molt serve` arguments that make molt's etcd agent watch this server."""
        args = ["--agents-etcd-endpoints", self.endpoint]
        if prefix is not None:
            args += ["--agents-etcd-prefix", prefix]
        return args

    def describe(self) -> str:
        pid = self.process.pid if self.process else None
        return f"etcd {self.name} pid {pid} (client {self.client_port}, peer {self.peer_port}), log {self.log_path}"

    # -- process

    def _command(self) -> list[str]:
        client = f"http://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        return [ETCD_BIN, "--name", self.name, "--data-dir", str(self.data_dir),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"{self.name}={peer}", "--initial-cluster-state", "new",
                "--initial-cluster-token", f"molt-test-{self.client_port}",
                # Quiet and fast: warnings only; a single member elects itself quickly.
                "--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn",
                "--heartbeat-interval", "50", "--election-timeout", "500",
                "--snapshot-count", "10000", "--auto-compaction-retention", "0"]

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = ETCD_STARTUP_TIMEOUT_S) -> None:
        """Starts etcd (again: same ports, same data) and waits until a Range answers."""
        assert not self.running(), f"{self.describe()} is already running"
        self.starts += 1
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"==== start {self.starts}: {' '.join(self._command())}\n".encode())
            log.flush()
            self.process = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        if self not in _RUNNING_ETCDS:
            _RUNNING_ETCDS.append(self)
        self._close_channel()
        deadline = time.monotonic() + timeout
        last_error = ""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EtcdStartError(f"etcd exited with {self.process.returncode}; its log:\n{_tail(self.log_path)}")
            try:
                self.revision(timeout=1)
                return
            except grpc.RpcError as error:
                last_error = f"{error.code()}: {error.details()}"
            time.sleep(0.05)
        raise EtcdStartError(f"etcd did not answer a Range in {timeout} s ({last_error}); its log:\n{_tail(self.log_path)}")

    def _end(self, sig: int, timeout: float) -> int | None:
        self._close_channel()
        if self.process is None:
            return None
        code = _stop_process(self.process, sig, timeout)
        if self in _RUNNING_ETCDS:
            _RUNNING_ETCDS.remove(self)
        return code

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, and waits for the exit (SIGKILL after `timeout`)."""
        return self._end(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        """SIGKILL, and waits for the exit."""
        return self._end(signal.SIGKILL, 10)

    # -- gRPC

    def _close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def _stubs(self):
        if self._channel is None:
            # A fresh channel per start: no reconnection backoff left over from the previous process.
            self._channel = grpc.insecure_channel(self.endpoint)
        return (self.protos.etcd_pb2_grpc.KVStub(self._channel), self.protos.etcd_pb2)

    def put(self, key: str | bytes, value, timeout: float = RPC_TIMEOUT_S) -> int:
        """Puts `value` (text, bytes, or component definitions as molt's JSON) at `key`; returns the revision."""
        kv, pb = self._stubs()
        response = kv.Put(pb.PutRequest(key=_as_bytes(key), value=_as_bytes(value)), timeout=timeout)
        return response.header.revision

    def delete(self, key: str | bytes, prefix: bool = False, timeout: float = RPC_TIMEOUT_S) -> int:
        """Deletes `key` (every key under it with prefix=True); returns the revision."""
        kv, pb = self._stubs()
        key = _as_bytes(key)
        request = pb.DeleteRangeRequest(key=key, range_end=prefix_range_end(key) if prefix else b"")
        return kv.DeleteRange(request, timeout=timeout).header.revision

    def get(self, key: str | bytes, timeout: float = RPC_TIMEOUT_S) -> bytes | None:
        kv, pb = self._stubs()
        response = kv.Range(pb.RangeRequest(key=_as_bytes(key)), timeout=timeout)
        return response.kvs[0].value if response.kvs else None

    def range_prefix(self, prefix: str | bytes, timeout: float = RPC_TIMEOUT_S) -> dict[bytes, bytes]:
        kv, pb = self._stubs()
        prefix = _as_bytes(prefix)
        response = kv.Range(pb.RangeRequest(key=prefix, range_end=prefix_range_end(prefix)), timeout=timeout)
        return {item.key: item.value for item in response.kvs}

    def compact(self, revision: int, physical: bool = True, timeout: float = RPC_TIMEOUT_S) -> None:
        """Compacts the history up to `revision` (physical: returns once the compaction is applied)."""
        kv, pb = self._stubs()
        kv.Compact(pb.CompactionRequest(revision=revision, physical=physical), timeout=timeout)

    def revision(self, timeout: float = RPC_TIMEOUT_S) -> int:
        """The current revision of the store (from a Range's response header)."""
        kv, pb = self._stubs()
        return kv.Range(pb.RangeRequest(key=b"\0", limit=1, count_only=True), timeout=timeout).header.revision


class EtcdFactory:
    """Starts etcd servers on free ports; `close()` kills them all."""

    def __init__(self, directory: Path, protos):
        self.directory = directory
        self.protos = protos
        self.servers: list[EtcdServer] = []

    def __call__(self, name: str | None = None) -> EtcdServer:
        if not Path(ETCD_BIN).exists():
            pytest.fail(f"{ETCD_BIN} is missing (Debian package etcd-server; scripts/install-deps.sh installs it)",
                        pytrace=False)
        last_error = ""
        for _attempt in range(3):
            client_port, peer_port = pick_free_port(), pick_free_port()
            member = name or f"etcd{len(self.servers) + 1}"
            server = EtcdServer(self.protos, self.directory / f"etcd-{client_port}", member, client_port, peer_port)
            self.servers.append(server)
            try:
                server.start()
                return server
            except EtcdStartError as error:
                last_error = str(error)
                server.kill()
                if "in use" not in last_error:
                    break  # not a port race: do not retry
        pytest.fail(f"etcd did not start: {last_error}", pytrace=False)

    def close(self) -> None:
        for server in self.servers:
            server.kill()


@pytest.fixture
def etcd(tmp_path, protos):
    """Factory: `server = etcd()` starts a single-member etcd on free loopback ports with its own data
    directory (killed at teardown). `server.endpoint`, `.put(key, value)`, `.delete(key)`, `.compact(rev)`,
    `.revision()`, `.stop()`, `.kill()`, `.start()` (same ports and data), `.molt_args(prefix=None)`."""
    factory = EtcdFactory(tmp_path, protos)
    yield factory
    factory.close()


# ---------------------------------------------------------------------------------------------
# Components


def state_component(name: str, redis: RedisServer | str, **metadata: str) -> dict:
    host = redis.address if isinstance(redis, RedisServer) else redis
    return {"kind": "state", "name": name, "plugin": "redis-state", "metadata": {"redisHost": host, **metadata}}


def lock_component(name: str, plugin: str = "memorylock", version: str | None = None, **metadata: str) -> dict:
    component = {"kind": "lock", "name": name, "plugin": plugin, "metadata": dict(metadata)}
    if version:
        component["version"] = version
    return component


@pytest.fixture(scope="session")
def components():
    """Builders of component definitions: `components.state(name, redis, **metadata)`,
    `components.lock(name, plugin="memorylock", version=None, **metadata)`."""
    return SimpleNamespace(state=state_component, lock=lock_component)


# ---------------------------------------------------------------------------------------------
# HTTP through curl


@dataclass
class CurlResult:
    status: int
    headers: dict[str, str]  # lower-case names; the last value wins
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.body)

    def __str__(self) -> str:
        return f"HTTP {self.status} {self.headers} {self.text[:500]!r}"


def curl(url: str, method: str = "GET", body: bytes | str | None = None, headers: dict[str, str] | None = None,
         workdir: Path | None = None) -> CurlResult:
    """One request with the curl command line tool (`curl -s -w '%{http_code}'`)."""
    workdir = workdir or Path("/tmp")
    stamp = f"{os.getpid()}-{time.monotonic_ns()}"
    header_file, body_file = workdir / f"curl-{stamp}.headers", workdir / f"curl-{stamp}.body"
    args = ["curl", "-s", "-S", "--max-time", str(CURL_TIMEOUT_S), "-X", method, "-D", str(header_file),
            "-o", str(body_file), "-w", "%{http_code}"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
    data = body.encode() if isinstance(body, str) else body
    try:
        done = subprocess.run(args + [url], input=data, capture_output=True, timeout=CURL_TIMEOUT_S + 5)
        assert done.returncode == 0, f"curl {method} {url} failed ({done.returncode}): {done.stderr.decode()}"
        status = int(done.stdout.decode().strip() or 0)
        headers_out: dict[str, str] = {}
        for line in header_file.read_text(errors="replace").splitlines():
            if line.startswith("HTTP/"):
                headers_out = {}  # a new response (after 100 Continue)
            elif ":" in line:
                name, value = line.split(":", 1)
                headers_out[name.strip().lower()] = value.strip()
        return CurlResult(status, headers_out, body_file.read_bytes() if body_file.exists() else b"")
    finally:
        header_file.unlink(missing_ok=True)
        body_file.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Prometheus text


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass
class Metrics:
    samples: list[tuple[str, dict[str, str], float]]
    text: str

    @staticmethod
    def parse(text: str) -> "Metrics":
        samples = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            match = _SAMPLE.match(line)
            assert match, f"not a Prometheus sample line: {line!r}"
            labels = dict(_LABEL.findall(match.group(3) or ""))
            samples.append((match.group(1), labels, float(match.group(4))))
        return Metrics(samples, text)

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named `name` whose labels include `labels` (0 when none)."""
        return sum(value for sample, sample_labels, value in self.samples
                   if sample == name and all(sample_labels.get(k) == v for k, v in labels.items()))

    def names(self) -> set[str]:
        return {name for name, _, _ in self.samples}


# ---------------------------------------------------------------------------------------------
# molt serve


# A preamble for the Dapr SDK scenario scripts: `emit(**values)` records what the scenario saw;
# the last line of stdout is the JSON of everything emitted.
_SDK_PREAMBLE = textwrap.dedent("""\
    import atexit, json, sys, warnings
    warnings.simplefilter("ignore")
    import grpc
    _results = {}
    def emit(**values):
        _results.update(values)
    def grpc_code(error):
        code = getattr(error, "code", None)
        code = code() if callable(code) else None
        return code.name if code is not None else None
    @atexit.register
    def _print_results():
        sys.stdout.flush()
        print("\\n" + json.dumps(_results, default=str), flush=True)
    """)


class Molt:
    """A running `molt serve`: its ports, process and logs, and clients of its APIs."""

    def __init__(self, *, process, ports, stderr_path, stdout_path, components_path, protos, workdir,
                 api_token=None, control_token=None, app_id="molt"):
        self.process: subprocess.Popen = process
        self.grpc_port, self.http_port, self.control_port, self.admin_port = ports
        self.stderr_path: Path = stderr_path
        self.stdout_path: Path = stdout_path
        self.components_path: Path = components_path
        self.protos = protos
        self.workdir: Path = workdir
        self.api_token = api_token
        self.control_token = control_token
        self.app_id = app_id
        self._channels: list[grpc.Channel] = []
        self._app_stub = None  # try_lock's, on one channel

    # -- process

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int:
        """Signals molt and waits for its exit code (SIGKILL after `timeout`)."""
        code = _stop_process(self.process, sig, timeout)
        self.close_channels()
        if self in _RUNNING_MOLTS:
            _RUNNING_MOLTS.remove(self)
        return code

    def describe(self) -> str:
        return (f"molt pid {self.process.pid} (grpc {self.grpc_port}, http {self.http_port}, control "
                f"{self.control_port}, admin {self.admin_port}), stderr {self.stderr_path}")

    # -- HTTP

    def http(self, method: str, path: str, body=None, token: str | None = "default", headers=None) -> CurlResult:
        """A request to the Dapr HTTP API (with the configured api token unless token=None or another one)."""
        all_headers = dict(headers or {})
        token = self.api_token if token == "default" else token
        if token is not None:
            all_headers[API_TOKEN_HEADER] = token
        if isinstance(body, (list, dict)):
            body = json.dumps(body)
        return curl(f"http://127.0.0.1:{self.http_port}{path}", method, body, all_headers, self.workdir)

    def admin(self, path: str) -> CurlResult:
        return curl(f"http://127.0.0.1:{self.admin_port}{path}", "GET", None, None, self.workdir)

    def metrics(self) -> Metrics:
        response = self.admin("/metrics")
        assert response.status == 200, f"GET /metrics: {response}"
        return Metrics.parse(response.text)

    # -- gRPC

    def channel(self, port: int) -> grpc.Channel:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self._channels.append(channel)
        return channel

    def close_channels(self) -> None:
        for channel in self._channels:
            channel.close()
        self._channels.clear()
        self._app_stub = None

    def dapr_stub(self):
        """The Dapr API stub of the dapr package (dapr.proto.runtime.v1), on molt's app gRPC port."""
        from dapr.proto.runtime.v1 import dapr_pb2_grpc

        return dapr_pb2_grpc.DaprStub(self.channel(self.grpc_port))

    def app_metadata(self, token: str | None = "default") -> list[tuple[str, str]]:
        token = self.api_token if token == "default" else token
        return [(API_TOKEN_HEADER, token)] if token is not None else []

    def control_metadata(self, token: str | None = "default") -> list[tuple[str, str]]:
        token = self.control_token if token == "default" else token
        return [(CONTROL_TOKEN_HEADER, token)] if token is not None else []

    def lifecycle_stub(self):
        return self.protos.lifecycle_pb2_grpc.LifecycleStub(self.channel(self.control_port))

    def control_stub(self):
        return self.protos.control_pb2_grpc.ControlStub(self.channel(self.control_port))

    def apply_configuration(self, kind: str, name: str, metadata: dict[str, str], token: str | None = "default",
                            timeout: float = RPC_TIMEOUT_S):
        """Layotto's Lifecycle.ApplyConfiguration with the full configuration; raises grpc.RpcError on failure."""
        pb = self.protos.lifecycle_pb2
        request = pb.DynamicConfiguration(
            component_config=pb.ComponentConfig(kind=kind, name=name, metadata=metadata))
        return self.lifecycle_stub().ApplyConfiguration(request, metadata=self.control_metadata(token), timeout=timeout)

    def list_components(self, token: str | None = "default") -> dict[tuple[str, str], object]:
        """Control.ListComponents as {(kind, name): ComponentStatus}."""
        response = self.control_stub().ListComponents(self.protos.control_pb2.ListComponentsRequest(),
                                                      metadata=self.control_metadata(token), timeout=RPC_TIMEOUT_S)
        return {(c.kind, c.name): c for c in response.components}

    def component(self, kind: str, name: str):
        components = self.list_components()
        assert (kind, name) in components, f"{kind}/{name} is not in ListComponents: {sorted(components)}"
        return components[(kind, name)]

    def generation(self, kind: str, name: str) -> int:
        return self.component(kind, name).generation

    def metadata_of(self, kind: str, name: str) -> dict[str, str]:
        """The active configuration of a component (ComponentStatus.metadata), as a dict."""
        return dict(self.component(kind, name).metadata)

    def given_metadata_of(self, kind: str, name: str) -> dict[str, str]:
        """The active configuration of a component without the entries that are its plugin's declared defaults
        (what molt filled in, and what was given equal to a default): compare with what was given."""
        status = self.component(kind, name)
        defaults = declared_defaults(status.plugin)
        return {k: v for k, v in status.metadata.items() if defaults.get(k) != v}

    def control_apply(self, kind: str, name: str, metadata: dict[str, str] | None = None, plugin: str = "",
                      version: str = "", pin: str = "", token: str | None = "default", timeout: float = RPC_TIMEOUT_S):
        """molt's Control.Apply with a full definition; returns the ApplyResult (action "failed" on failure)."""
        pb = self.protos.control_pb2
        request = pb.ApplyRequest(kind=kind, name=name, metadata=metadata or {}, plugin=plugin, version=version, pin=pin)
        return self.control_stub().Apply(request, metadata=self.control_metadata(token), timeout=timeout).result

    def remove_component(self, kind: str, name: str, token: str | None = "default"):
        pb = self.protos.control_pb2
        return self.control_stub().RemoveComponent(pb.RemoveComponentRequest(kind=kind, name=name),
                                                   metadata=self.control_metadata(token), timeout=RPC_TIMEOUT_S).result

    def watch_applies(self, include_recent: bool = True) -> "ApplyWatcher":
        """Control.WatchApplies read by a background thread (close it, or it is closed with the channels)."""
        return ApplyWatcher(self, include_recent)

    def try_lock(self, store: str, resource: str, owner: str, expiry: int = 30) -> bool:
        """Dapr TryLockAlpha1 over gRPC; raises grpc.RpcError when molt refuses the call."""
        from dapr.proto.runtime.v1 import lock_pb2

        request = lock_pb2.TryLockRequest(store_name=store, resource_id=resource, lock_owner=owner,
                                          expiry_in_seconds=expiry)
        if self._app_stub is None:
            self._app_stub = self.dapr_stub()
        return self._app_stub.TryLockAlpha1(request, metadata=self.app_metadata(), timeout=RPC_TIMEOUT_S).success

    def readiness(self) -> int:
        """The HTTP status of /actuator/health/readiness (200 UP, 503 DOWN)."""
        return self.admin("/actuator/health/readiness").status

    # -- Dapr Python SDK

    def sdk_env(self, token: str | None = "default") -> dict[str, str]:
        """The environment of an app that uses the Dapr SDK against this molt: only Dapr's standard variables."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAPR_")}
        env.update(DAPR_RUNTIME_HOST="127.0.0.1", DAPR_HTTP_PORT=str(self.http_port),
                   DAPR_GRPC_PORT=str(self.grpc_port),
                   # The SDK waits this long for /v1.0/healthz/outbound in DaprClient() (default 60 s).
                   DAPR_HEALTH_TIMEOUT="10")
        token = self.api_token if token == "default" else token
        if token is not None:
            env["DAPR_API_TOKEN"] = token
        return env

    def spawn_sdk(self, code: str, token: str | None = "default") -> subprocess.Popen:
        """Starts `code` (which uses the unmodified Dapr SDK, e.g. `DaprClient()`) in a fresh Python process
        whose environment configures the SDK for this molt (stdout and stderr are pipes, text)."""
        script = self.workdir / f"sdk-{time.monotonic_ns()}.py"
        script.write_text(_SDK_PREAMBLE + textwrap.dedent(code))
        return subprocess.Popen([sys.executable, str(script)], env=self.sdk_env(token), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=self.workdir)

    def run_sdk(self, code: str, token: str | None = "default", timeout: float = SDK_SCRIPT_TIMEOUT_S) -> dict:
        """Runs `code` like `spawn_sdk` and waits for it. The script reports with `emit(name=value)`;
        returns the emitted values. Fails the test when the script raised or timed out."""
        process = self.spawn_sdk(code, token)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            pytest.fail(f"the Dapr SDK script did not finish in {timeout} s\n--- script\n{textwrap.dedent(code)}\n"
                        f"--- stdout\n{stdout}\n--- stderr\n{stderr}", pytrace=False)
        lines = stdout.strip().splitlines()
        if process.returncode != 0 or not lines:
            pytest.fail(f"the Dapr SDK script failed (exit {process.returncode})\n--- script\n{textwrap.dedent(code)}\n"
                        f"--- stdout\n{stdout}\n--- stderr\n{stderr}", pytrace=False)
        return json.loads(lines[-1])


class ApplyWatcher:
    """molt's Control.WatchApplies stream, read by a background thread: `events` holds every ApplyResult
    received with time.monotonic() at its arrival. With include_recent (the default) the history comes
    first, so nothing applied after the stream was opened is missed; `since(ms)` keeps the events that
    finished at or after a wall-clock moment (`unix_ms()`, compared with ApplyResult.finished_unix_ms)."""

    def __init__(self, molt: "Molt", include_recent: bool = True):
        pb = molt.protos.control_pb2
        self._stream = molt.control_stub().WatchApplies(pb.WatchAppliesRequest(include_recent=include_recent),
                                                        metadata=molt.control_metadata())
        self.events: list[tuple[float, object]] = []
        self.error: grpc.RpcError | None = None
        self.ended = False
        self._condition = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                arrived = time.monotonic()
                with self._condition:
                    self.events.append((arrived, event))
                    self._condition.notify_all()
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.error = error
        finally:
            with self._condition:
                self.ended = True
                self._condition.notify_all()

    def since(self, unix_ms: int, kind: str | None = None, name: str | None = None) -> list:
        with self._condition:
            return [event for _, event in self.events if event.finished_unix_ms >= unix_ms
                    and (kind is None or event.kind == kind) and (name is None or event.name == name)]

    def wait_for(self, predicate, what: str, timeout: float = 15.0, start: int = 0):
        """The first event from index `start` on for which `predicate(event)` holds; AssertionError on
        timeout or when the stream ended."""
        deadline = time.monotonic() + timeout
        index = start
        with self._condition:
            while True:
                while index < len(self.events):
                    event = self.events[index][1]
                    index += 1
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if self.ended or remaining <= 0:
                    seen = [(e.kind, e.name, e.action) for _, e in self.events[start:]][-20:]
                    raise AssertionError(f"no apply event for {what} (stream ended={self.ended}, error={self.error}, "
                                         f"last events: {seen})")
                self._condition.wait(remaining)

    def close(self) -> None:
        self._stream.cancel()
        self._thread.join(10)


class MoltFactory:
    """Starts `molt serve` processes; `close()` stops them all."""

    def __init__(self, directory: Path, molt_bin: Path, plugins_dir: Path, protos):
        self.directory = directory
        self.molt_bin = molt_bin
        self.plugins_dir = plugins_dir
        self.protos = protos
        self.started: list[Molt] = []
        self.count = 0

    def __call__(self, components: list[dict], *, plugins_dir: Path | None = None, api_token: str | None = None,
                 control_token: str | None = None, app_id: str | None = None, extra_args: list[str] = (),
                 env: dict[str, str] | None = None, wait_ready: bool = True) -> Molt:
        """Writes `components` to a components JSON file, starts `molt serve` on free ports and waits until
        GET /v1.0/healthz answers 204, or with `wait_ready=False` until every port accepts (fails the
        test with molt's stderr when molt exits first)."""
        self.count += 1
        workdir = self.directory / f"molt-{self.count}"
        workdir.mkdir(parents=True, exist_ok=True)
        components_path = workdir / "components.json"
        components_path.write_text(json.dumps({"components": components}, indent=2))
        process_env = {k: v for k, v in os.environ.items()
                       if not (k.startswith("DAPR_") or k.startswith("MOLT_") or k == "APP_ID")}
        process_env.update(env or {})
        last_error = ""
        for attempt in range(3):
            ports = tuple(pick_free_port() for _ in range(4))
            grpc_port, http_port, control_port, admin_port = ports
            args = [str(self.molt_bin), "serve", "--plugins-directory", str(plugins_dir or self.plugins_dir),
                    "--components", str(components_path),
                    "--grpc-address", f"127.0.0.1:{grpc_port}", "--http-address", f"127.0.0.1:{http_port}",
                    "--control-address", f"127.0.0.1:{control_port}", "--admin-address", f"127.0.0.1:{admin_port}"]
            if api_token is not None:
                args += ["--api-token", api_token]
            if control_token is not None:
                args += ["--control-token", control_token]
            if app_id is not None:
                args += ["--app-id", app_id]
            args += list(extra_args)
            stderr_path = workdir / f"stderr-{attempt}.log"
            stdout_path = workdir / f"stdout-{attempt}.log"
            with open(stderr_path, "wb") as err, open(stdout_path, "wb") as out:
                process = subprocess.Popen(args, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=process_env,
                                           cwd=workdir, start_new_session=True)
            molt = Molt(process=process, ports=ports, stderr_path=stderr_path, stdout_path=stdout_path,
                        components_path=components_path, protos=self.protos, workdir=workdir,
                        api_token=api_token, control_token=control_token, app_id=app_id or "molt")
            self.started.append(molt)
            _RUNNING_MOLTS.append(molt)
            if self._wait_healthy(molt, wait_ready):
                return molt
            molt.stop(signal.SIGKILL)
            last_error = molt.stderr()
            if "in use" not in last_error.lower():
                break  # not a port race: do not retry
        # A crash report is long: show its head (the fatal error and the crashed thread) and the log's tail.
        crash_at = last_error.find("Program crashed")
        crash = "" if crash_at < 0 else f"--- crash report (head)\n{last_error[max(0, crash_at - 2000):crash_at + 6000]}\n"
        pytest.fail(f"molt serve did not become healthy (exit code {molt.process.returncode})\n"
                    f"command: {' '.join(args)}\ncomponents: {components_path.read_text()}\n"
                    f"{crash}--- stderr (tail)\n{last_error[-6000:]}", pytrace=False)

    @staticmethod
    def _wait_healthy(molt: Molt, wait_ready: bool = True) -> bool:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if not molt.alive():
                return False
            try:
                connection = http.client.HTTPConnection("127.0.0.1", molt.http_port, timeout=1)
                connection.request("GET", "/v1.0/healthz")
                status = connection.getresponse().status
                connection.close()
                if (status == 204 or not wait_ready) and all(_tcp_accepts(p) for p in (molt.grpc_port, molt.control_port,
                                                                                        molt.admin_port)):
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def close(self) -> None:
        for molt in self.started:
            if molt.alive():
                molt.stop(signal.SIGTERM, timeout=10)
            else:
                molt.stop()


@pytest.fixture
def molt(tmp_path, molt_bin, plugins_dir, protos):
    """Factory: `m = molt([components...], api_token=..., control_token=..., plugins_dir=...)` starts a
    `molt serve` on free ports and returns a `Molt` once /v1.0/healthz is 204. Stopped at teardown."""
    factory = MoltFactory(tmp_path, molt_bin, plugins_dir, protos)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def module_molt(tmp_path_factory, molt_bin, plugins_dir, protos):
    """Like `molt`, for a molt shared by the tests of one module."""
    factory = MoltFactory(tmp_path_factory.mktemp("molt"), molt_bin, plugins_dir, protos)
    yield factory
    factory.close()


# ---------------------------------------------------------------------------------------------
# Helpers of the etcd agent, layers and app-fed tests


ETCD_PREFIX = "/molt/"  # molt's default --agents-etcd-prefix
# molt's etcd agent reconnects with a backoff capped at a few seconds, and a debug build applies slower.
CONVERGE_TIMEOUT_S = 30.0


def common_key(name: str, prefix: str = ETCD_PREFIX) -> str:
    """The etcd key of a component file in the COMMON layer (every sidecar)."""
    return f"{prefix}common/{name}"


def app_key(app: str, name: str, prefix: str = ETCD_PREFIX) -> str:
    """The etcd key of a component file in the APP layer of `app`."""
    return f"{prefix}apps/{app}/{name}"


def unix_ms() -> int:
    """The wall clock in Unix milliseconds, comparable with ApplyResult.finished_unix_ms."""
    return int(time.time() * 1000)


def wait_config(sidecar: Molt, name: str, metadata: dict[str, str], kind: str = "lock", since: int | None = None,
                timeout: float = CONVERGE_TIMEOUT_S):
    """Waits until `kind`/`name` runs with exactly `metadata` (ComponentStatus.metadata, once its plugin's declared
    defaults are filled in: `running_config`) and, with `since`
    (unix_ms() taken before the change), until its last result is one that finished after that moment
    (a new configuration is visible a little before its apply result is recorded). Returns its status."""
    def matches():
        status = sidecar.list_components().get((kind, name))
        if status is None or dict(status.metadata) != running_config(status.plugin, metadata):
            return None
        if since is not None and status.last_result.finished_unix_ms < since:
            return None
        return status
    try:
        what = f"{kind}/{name} to run with {metadata}" + (f" (an apply finished after {since})" if since else "")
        return wait_for(matches, what, timeout)
    except AssertionError as error:
        status = sidecar.list_components().get((kind, name))
        current = None if status is None else {"metadata": dict(status.metadata), "generation": status.generation,
                                               "last_action": status.last_result.action,
                                               "last_error": status.last_result.error,
                                               "last_finished_unix_ms": status.last_result.finished_unix_ms}
        raise AssertionError(f"{error}; on molt pid {sidecar.process.pid} it is {current}") from None


def wait_removed(sidecar: Molt, name: str, kind: str = "lock", timeout: float = CONVERGE_TIMEOUT_S) -> None:
    wait_for(lambda: (kind, name) not in sidecar.list_components(), f"{kind}/{name} to be removed", timeout)


def result_of(status) -> tuple:
    """What identifies a component's last apply (any new apply, even "unchanged", changes it)."""
    result = status.last_result
    return (status.generation, result.action, result.new_generation, result.finished_unix_ms)


def assert_maxlocks_limit(sidecar: Molt, store: str, limit: int, owner: str = "limit-check", held: int = 0) -> None:
    """With `held` locks already held, the running memorylock grants `limit - held` locks of fresh resources
    and refuses one more with its own message: proof that the plugin instance runs with maxLocks=`limit`."""
    for index in range(limit - held):
        assert sidecar.try_lock(store, f"{owner}-{index}", owner), f"{store}: lock {index} of {limit} not granted"
    with pytest.raises(grpc.RpcError) as caught:
        sidecar.try_lock(store, f"{owner}-{limit - held}", owner)
    assert f"maxLocks ({limit}) reached" in (caught.value.details() or ""), \
        f"{store}: lock {limit + 1} refused with {caught.value.code()} {caught.value.details()}"


# ---------------------------------------------------------------------------------------------
# Failure reports: show what molt said


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for molt in list(_RUNNING_MOLTS):
            report.sections.append((f"stderr of {molt.describe()} (last lines)", _tail(molt.stderr_path, 40)))
        for server in list(_RUNNING_ETCDS):
            report.sections.append((f"log of {server.describe()} (last lines)", _tail(server.log_path, 20)))


@pytest.fixture(scope="module")
def redis(module_redis_server):
    """One redis-server per test module."""
    return module_redis_server()


@pytest.fixture(scope="module")
def sidecar(module_molt, redis, components):
    """One molt per test module (modules may define their own): state store `statestore` on `redis`,
    lock store `lockstore`."""
    return module_molt([components.state("statestore", redis), components.lock("lockstore")])


# A Dapr Component YAML for a memorylock lock store; format with name, max_locks and buckets.
DAPR_LOCK_YAML = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: {name}
spec:
  type: lock.in-memory
  metadata:
    - name: maxLocks
      value: "{max_locks}"
    - name: buckets
      value: "{buckets}"
"""
