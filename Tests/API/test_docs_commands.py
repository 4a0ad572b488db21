"""docs/plugin-authors.md is executed: every command in its `sh` blocks runs here as written, in order, and must
succeed (issue 16: "every command in it is run by make test as written").

What "as written" allows, and nothing else:
- `molt` is the molt under test (first on PATH);
- the placeholder words are replaced by paths of this test's workspace: DIR (a new project directory), PLUGINS
  (a plugins directory), PLUGINKIT (the repository's PluginKit);
- the commands run in one workspace holding the repository's `PluginKit` and `docs` (symlinks) and an empty
  `plugins.d`, so paths relative to the repository's root work;
- before the first command that talks to a running molt (`molt apply`, `molt status`), a `molt serve` on PLUGINS is
  started and `MOLT_CONTROL_ADDRESS` points the CLI at it;
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
NEEDS_SERVER = ("molt apply", "molt status", "molt remove")

pytestmark = pytest.mark.skipif(any(os.system(f"command -v {tool} >/dev/null") for tool in ("make", "cc")),
                                reason="needs make and cc")


def doc_commands(text: str) -> list[tuple[int, str]]:
    """(line number, command) for every command of every ```sh block, continuation lines joined."""
    commands, block, pending, start = [], False, "", 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            block = line.strip() == "```sh" if not block else False
            continue
        if not block or (not pending and not line.strip()):
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        commands.append((start, pending + line))
        pending = ""
    return commands


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
    commands = doc_commands(DOC.read_text())
    assert any(command.startswith("molt plugin new") for _, command in commands), commands
    assert any(command.startswith("cc ") for _, command in commands), commands


def test_every_command_in_plugin_authors_md_runs_as_written(tmp_path, molt, molt_bin):
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "PluginKit").symlink_to(ROOT / "PluginKit")
    (workspace / "docs").symlink_to(ROOT / "docs")
    (workspace / "plugins.d").mkdir(mode=0o755)
    plugins = workspace / "plugins"
    plugins.mkdir(mode=0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "molt").symlink_to(molt_bin)
    places = {"DIR": str(workspace / "project"), "PLUGINS": str(plugins), "PLUGINKIT": str(ROOT / "PluginKit")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOLT_")}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"

    ran = []
    for line, written in doc_commands(DOC.read_text()):
        command, shows = split_comment(written)
        for word, path in places.items():
            command = re.sub(rf"(?<![\w$/.-]){word}(?![\w])", path, command)
        if command.startswith(NEEDS_SERVER) and "MOLT_CONTROL_ADDRESS" not in env:
            sidecar = molt([], plugins_dir=plugins)
            env["MOLT_CONTROL_ADDRESS"] = f"127.0.0.1:{sidecar.control_port}"
        done = subprocess.run(["bash", "-c", command], cwd=workspace, env=env, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S)
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"docs/plugin-authors.md:{line}: `{written.strip()}` failed ({done.returncode}):\n{output[-3000:]}"
        if shows is not None:
            assert squeeze(shows) in squeeze(output), f"docs/plugin-authors.md:{line}: `{written.strip()}` should show {shows!r}:\n{output[-3000:]}"
        ran.append(command)
    assert len(ran) >= 10, ran
