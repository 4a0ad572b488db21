"""Declared operations (ABI 1.2) at the command line: `molt plugin inspect` prints each operation with its
signature (and JSON has them); `molt apply` refuses a version swap that removes an operation or changes its
signature, naming each difference, with exit 1 and failure operations-would-change (also with --dry-run),
until the operator gives --accept-operation-changes; a swap that only adds operations goes through."""

import json
import subprocess

import pytest

CLI_TIMEOUT_S = 60


def run(molt_bin, *args):
    return subprocess.run([str(molt_bin), *args], capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


def cli(molt_bin, sidecar, *args):
    command, rest = args[0], args[1:]
    return run(molt_bin, command, "--control-address", f"127.0.0.1:{sidecar.control_port}", *rest)


def test_inspect_prints_operations_with_signatures(molt_bin, fixtures_dir):
    text = run(molt_bin, "plugin", "inspect", str(fixtures_dir / "ops-1.0.0.so"))
    assert text.returncode == 0, text
    assert "kind:        binding" in text.stdout, text.stdout
    assert "  add(a: int64, b: int64) -> (sum: int64)\n" in text.stdout, text.stdout
    assert "  sleep(ms: int64) -> (slept: int64)  [blocking]\n" in text.stdout, text.stdout
    assert ("  vsum(a: int64, b: double, label: string, data: bytes, flag: bool) -> "
            "(total: double, tagged: string, doubled: bytes, inverted: bool)  [values form]\n") in text.stdout, text.stdout
    as_json = run(molt_bin, "plugin", "inspect", "--json", str(fixtures_dir / "ops-1.0.0.so"))
    assert as_json.returncode == 0, as_json
    operations = {operation["name"]: operation for operation in json.loads(as_json.stdout)["operations"]}
    assert operations["echo"]["signature"] == "echo(text: string, data: bytes) -> (upper: string, reversed: bytes, length: int64)"
    assert operations["echo"]["parameters"] == [{"name": "text", "type": "string", "description": ""},
                                                {"name": "data", "type": "bytes", "description": ""}]
    assert operations["sleep"]["blocking"] and not operations["sleep"]["valuesForm"]
    assert operations["vsum"]["valuesForm"]


def test_inspect_names_the_bad_declaration(molt_bin, fixtures_dir):
    refused = run(molt_bin, "plugin", "inspect", str(fixtures_dir / "bad-ops-unknown-type.so"))
    assert refused.returncode == 1, refused
    assert "operation 'echo', field 'text': unknown type 9" in refused.stderr, refused


REFUSAL = ("swapping binding/calc from ops@1.0.0 to ops@2.0.0 would break apps calling its operations: "
           "add(a: int64, b: int64) -> (sum: int64) changed to add(a: double, b: double) -> (sum: double); "
           "negate(flag: bool) -> (result: bool) removed; "
           "apply with accept_operation_changes (molt apply --accept-operation-changes) to swap anyway")


@pytest.fixture
def sidecar(molt, fixtures_dir):
    return molt([{"kind": "binding", "name": "calc", "plugin": "ops", "version": "1.0.0", "metadata": {}}], plugins_dir=fixtures_dir)


def test_a_swap_that_changes_operations_is_refused_until_accepted(sidecar, molt_bin):
    swap = ("apply", "--kind", "binding", "--name", "calc", "--version", "2.0.0")
    refused = cli(molt_bin, sidecar, *swap)
    assert refused.returncode == 1, refused
    assert REFUSAL in refused.stdout + refused.stderr, refused
    as_json = cli(molt_bin, sidecar, *swap, "--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["failure"] == "operations-would-change", as_json
    dry_run = cli(molt_bin, sidecar, *swap, "--dry-run")
    assert dry_run.returncode == 1 and REFUSAL in dry_run.stdout + dry_run.stderr, dry_run
    assert sidecar.component("binding", "calc").plugin == "ops@1.0.0"

    accepted = cli(molt_bin, sidecar, *swap, "--accept-operation-changes")
    assert accepted.returncode == 0, accepted
    assert "version-swapped" in accepted.stdout, accepted.stdout
    assert sidecar.component("binding", "calc").plugin == "ops@2.0.0"


def test_a_swap_that_only_adds_operations_goes_through(sidecar, molt_bin):
    added = cli(molt_bin, sidecar, "apply", "--kind", "binding", "--name", "calc", "--version", "1.1.0")
    assert added.returncode == 0 and "version-swapped" in added.stdout, added
    assert sidecar.component("binding", "calc").plugin == "ops@1.1.0"
