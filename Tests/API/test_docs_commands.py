"""docs/plugin-authors.md is executed: every command in its `sh` blocks runs here as written, in order, and must
succeed (issue 16: "every command in it is run by make test as written").

What "as written" allows, and nothing else:
- `molt` is the molt under test (first on PATH);
- each block runs on its own, in order, with placeholder words replaced by paths of this test: DIR (a new
  project directory) and PLUGINS (a new plugins directory);
- every block runs in one workspace holding the repository's `PluginKit` and `docs`, the repository itself as
  `molt` (a checkout, for `--pluginkit molt/PluginKit`), and an empty `plugins.d`, so paths relative to the
  repository's root work;
- before a block's first command that talks to a running molt (`molt apply`, `molt status`, `curl localhost:3500`),
  a `molt serve` on that block's PLUGINS is started; `MOLT_CONTROL_ADDRESS` points the CLI at it and the default
  app address `localhost:3500` is replaced by its HTTP address;
- a trailing `# shows: TEXT` comment is checked: TEXT must appear in the command's output (whitespace-insensitive).
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("MOLT_ROOT", Path(__file__).resolve().parents[2]))
DOC = ROOT / "docs/plugin-authors.md"
COMMAND_TIMEOUT_S = 900  # a Swift package build on a loaded 2-core machine
NEEDS_SERVER = ("molt apply", "molt status", "molt remove", "curl")
APP_HTTP = "localhost:3500"

pytestmark = pytest.mark.skipif(any(os.system(f"command -v {tool} >/dev/null") for tool in ("make", "cc")),
                                reason="needs make and cc")


def doc_blocks(text: str) -> list[list[tuple[int, str]]]:
    """Every ```sh block as (line number, command) pairs, continuation lines joined."""
    blocks, block, pending, start = [], None, "", 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            if block is None and line.strip() == "```sh":
                block = []
            elif block is not None:
                blocks.append(block)
                block = None
            continue
        if block is None or (not pending and not line.strip()):
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        block.append((start, pending + line))
        pending = ""
    return blocks


def split_comment(command: str) -> tuple[str, str | None]:
    """The command without its trailing `# …` comment, and the text of a `# shows: …` comment."""
    match = re.search(r"\s#\s(.*)$", command)
    if not match:
        return command.strip(), None
    comment = match.group(1).strip()
    shows = comment[len("shows:"):].strip() if comment.startswith("shows:") else None
    return command[:match.start()].strip(), shows


def squeeze(text: str) -> str:
    return " ".join(text.split())


def test_the_doc_has_commands():
    commands = [command for block in doc_blocks(DOC.read_text()) for _, command in block]
    assert any(command.startswith("molt plugin new") for command in commands), commands
    assert any(command.startswith("cc ") for command in commands), commands


def test_every_command_in_plugin_authors_md_runs_as_written(tmp_path, molt, molt_bin):
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "PluginKit").symlink_to(ROOT / "PluginKit")
    (workspace / "docs").symlink_to(ROOT / "docs")
    (workspace / "molt").symlink_to(ROOT)
    (workspace / "plugins.d").mkdir(mode=0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "molt").symlink_to(molt_bin)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MOLT_")}
    base_env["PATH"] = f"{bin_dir}:{base_env['PATH']}"

    ran = []
    for index, block in enumerate(doc_blocks(DOC.read_text())):
        plugins = tmp_path / f"plugins-{index}"
        plugins.mkdir(mode=0o755)
        places = {"DIR": str(tmp_path / f"project-{index}"), "PLUGINS": str(plugins)}
        env, sidecar = dict(base_env), None
        for line, written in block:
            command, shows = split_comment(written)
            for word, path in places.items():
                command = re.sub(rf"(?<![\w$/.-]){word}(?![\w])", path, command)
            if command.startswith(NEEDS_SERVER) and sidecar is None:
                sidecar = molt([], plugins_dir=plugins)
                env["MOLT_CONTROL_ADDRESS"] = f"127.0.0.1:{sidecar.control_port}"
            if sidecar is not None:
                command = command.replace(APP_HTTP, f"127.0.0.1:{sidecar.http_port}")
            done = subprocess.run(["bash", "-c", command], cwd=workspace, env=env, capture_output=True, text=True,
                                  timeout=COMMAND_TIMEOUT_S)
            output = done.stdout + done.stderr
            assert done.returncode == 0, \
                f"docs/plugin-authors.md:{line}: `{written.strip()}` failed ({done.returncode}):\n{output[-3000:]}"
            if shows is not None:
                assert squeeze(shows) in squeeze(output), \
                    f"docs/plugin-authors.md:{line}: `{written.strip()}` should show {shows!r}:\n{output[-3000:]}"
            ran.append(command)
    assert len(ran) >= 20, ran
