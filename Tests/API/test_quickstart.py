"""The README's Quickstart, executed: its commands run against `molt serve` with examples/demo-components.json
(what `make run` serves), and `scripts/demo-redis-dr.sh` (`make demo-redis-dr`) runs to the end.

The Quickstart's runnable blocks are the fenced ```sh / ```python blocks whose first line is `# quickstart`,
read from README.md when it holds one, else from docs/quickstart.md (where the section is written before it
is spliced into the README). In them, `localhost:3500` (app HTTP) and `localhost:50001` (app gRPC) are `make
run`'s defaults: the test rewrites them to the ports of the molt it started, and gives the Python block the
sidecar's DAPR_HTTP_PORT / DAPR_GRPC_PORT. The rule a reader can check too: a command (sh) or a line (python)
ending in `# → X` must print X (compared as JSON when X is JSON); an sh command without one must print nothing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import ROOT

MARKER = "# quickstart"
COMMAND_TIMEOUT_S = 30.0  # one curl command of the Quickstart
PYTHON_TIMEOUT_S = 90.0  # the Python SDK block (DaprClient() waits for molt's health first)
DEMO_TIMEOUT_S = 240.0  # scripts/demo-redis-dr.sh as a whole (each of its waits is bounded by DEMO_TIMEOUT_S=30)

_FENCE = re.compile(r"^```(sh|bash|python)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_EXPECTED = re.compile(r"#\s*→\s*(.*?)\s*$")


@dataclass
class Block:
    language: str  # "sh" or "python"
    code: str
    source: Path
    line: int  # of the opening fence

    @property
    def id(self) -> str:
        return f"{self.source.name}:{self.line}-{self.language}"


def quickstart_blocks() -> tuple[Path, list[Block]]:
    """The runnable Quickstart blocks: README.md's when it holds the marker, else docs/quickstart.md's."""
    for path in (ROOT / "README.md", ROOT / "docs" / "quickstart.md"):
        if not path.exists():
            continue
        text = path.read_text()
        blocks = []
        for match in _FENCE.finditer(text):
            code = match.group(2)
            first = next((line.strip() for line in code.splitlines() if line.strip()), "")
            if first == MARKER:
                language = "python" if match.group(1) == "python" else "sh"
                blocks.append(Block(language, code, path, text.count("\n", 0, match.start()) + 1))
        if blocks:
            return path, blocks
    return ROOT / "docs" / "quickstart.md", []


SOURCE, BLOCKS = quickstart_blocks()


def sh_commands(code: str) -> list[tuple[str, str | None]]:
    """The commands of an sh block (backslash continuations joined; blank and comment lines skipped), each
    with the output its `# → X` promises (None: none promised)."""
    commands, current = [], ""
    for line in code.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        expected = _EXPECTED.search(current)
        commands.append((current.strip(), expected.group(1) if expected else None))
        current = ""
    assert not current, f"an sh block ends in a continuation line: {current!r}"
    return commands


def python_expected(code: str) -> list[str]:
    """What the Python block promises to print: the `# → X` of its lines, in order."""
    return [match.group(1) for match in map(_EXPECTED.search, code.splitlines()) if match]


def same_output(printed: str, expected: str) -> bool:
    """`printed` is what `expected` promises: equal as JSON when both are JSON, else as text."""
    try:
        return json.loads(printed) == json.loads(expected)
    except ValueError:
        return printed.strip() == expected.strip()


def for_sidecar(text: str, sidecar) -> str:
    """`make run`'s default app ports in `text` replaced by those of `sidecar`."""
    text = re.sub(r":3500\b", f":{sidecar.http_port}", text)
    return re.sub(r":50001\b", f":{sidecar.grpc_port}", text)


@pytest.fixture(scope="module")
def demo(module_molt):
    """molt serving examples/demo-components.json, as `make run` does (on free ports)."""
    components = json.loads((ROOT / "examples" / "demo-components.json").read_text())["components"]
    return module_molt(components)


def test_quickstart_has_runnable_blocks():
    assert BLOCKS, f"no fenced block starting with {MARKER!r} in README.md or docs/quickstart.md"
    shell = "\n".join(block.code for block in BLOCKS if block.language == "sh")
    python = "\n".join(block.code for block in BLOCKS if block.language == "python")
    for what in ("/v1.0/state/statestore", "/v1.0-alpha1/lock/lockstore", "/v1.0-alpha1/unlock/lockstore"):
        assert what in shell, f"the Quickstart ({SOURCE}) has no runnable curl command on {what}"
    for what in ("save_state", "get_state", "try_lock", "unlock"):
        assert what in python, f"the Quickstart's Python block ({SOURCE}) does not call {what}"


def test_make_run_serves_daprs_quickstart_names(demo):
    listed = demo.list_components()
    assert sorted(listed) == [("lock", "lockstore"), ("pubsub", "pubsub"), ("state", "statestore")], sorted(listed)
    assert listed[("pubsub", "pubsub")].plugin.startswith("in-memory-pubsub@")
    assert listed[("state", "statestore")].plugin.startswith("in-memory@")
    assert listed[("lock", "lockstore")].plugin.startswith("memorylock@")
    assert dict(listed[("lock", "lockstore")].metadata).get("maxLocks") == "100000"


@pytest.mark.parametrize("block", BLOCKS, ids=lambda block: block.id)
def test_quickstart_block(demo, block):
    if block.language == "sh":
        commands = sh_commands(block.code)
        assert commands, f"{block.id}: no command"
        for command, expected in commands:
            run = for_sidecar(command, demo)
            done = subprocess.run(["bash", "-o", "pipefail", "-c", run], capture_output=True, text=True,
                                  timeout=COMMAND_TIMEOUT_S, env=demo.sdk_env(token=None), cwd=demo.workdir)
            report = f"{block.id}: `{run}` (exit {done.returncode})\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
            assert done.returncode == 0, report
            if expected is None:
                assert done.stdout.strip() == "", f"promises no output; {report}"
            else:
                assert same_output(done.stdout, expected), f"promises {expected}; {report}"
    else:
        expected = python_expected(block.code)
        assert expected, f"{block.id}: no line promises an output (`# → ...`)"
        script = demo.workdir / f"quickstart-{block.line}.py"
        script.write_text(for_sidecar(block.code, demo))
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=PYTHON_TIMEOUT_S,
                              env=demo.sdk_env(token=None), cwd=demo.workdir)
        report = f"{block.id} (exit {done.returncode})\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        assert done.returncode == 0, report
        printed = [line for line in done.stdout.splitlines() if line.strip()]
        assert len(printed) == len(expected) and all(map(same_output, printed, expected)), \
            f"promises {expected}; {report}"


def test_demo_redis_dr_script(molt_bin, plugins_dir):
    """`make demo-redis-dr`: statestore on Redis A, one `molt apply` moves it to Redis B; the demo shows the
    generation before and after and that the new write landed in B, exits 0 and leaves nothing running."""
    env = {**os.environ, "MOLT_BIN": str(molt_bin), "MOLT_PLUGINS_DIR": str(plugins_dir), "DEMO_TIMEOUT_S": "30"}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "demo-redis-dr.sh")], capture_output=True, text=True,
                          timeout=DEMO_TIMEOUT_S, env=env, stdin=subprocess.DEVNULL)
    out = done.stdout
    report = f"exit {done.returncode}\n--- stdout\n{out}\n--- stderr\n{done.stderr}"
    assert done.returncode == 0, report

    generation = 'molt_component_generation{kind="state",component="statestore"}'
    before = out.index("statestore generation before the DR switch: 1")
    switch = out.index("molt apply ")
    after = out.index("statestore generation after the DR switch: 2")
    assert before < switch < after, report
    assert re.search(re.escape(generation) + r" 1(\.0)?\n", out[:switch]), report
    assert re.search(re.escape(generation) + r" 2(\.0)?\n", out[switch:]), report
    assert 'molt_applies_total{kind="state",component="statestore",action="reloaded"} 1' in out[switch:], report

    b_address = re.search(r"^redis-server B \(pid \d+\) on (127\.0\.0\.1:\d+)$", out, re.MULTILINE).group(1)
    assert f"--metadata redisHost={b_address}" in out, report
    assert f"new write landed in B ({b_address})" in out, report

    # Everything the demo started is gone (reaped by the script, or at least not running).
    pids = [int(pid) for pid in re.findall(r"\(pid (\d+)\)", out)]
    assert len(set(pids)) == 3, f"expected two redis-servers and one molt: {pids}\n{report}"
    for pid in set(pids):
        assert f"stopped {'molt' if f'molt (pid {pid})' in out else 'redis-server'} (pid {pid})" in out, report
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            continue
        assert state in ("Z", "X"), f"pid {pid} the demo started still runs (state {state})\n{report}"
