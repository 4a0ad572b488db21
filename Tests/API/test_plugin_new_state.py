"""`molt plugin new --kind state --language c`: the generated C state store project builds as written (make,
make VERSION=1.1.0), `make test` passes (etags, first-write, in-place config, export -> import), both .so load
(kind state, ABI 1.2, holds state, state format 1, declared keys), and in a real `molt serve` it is applied,
saves and reads a key over HTTP, applies maxKeys in place (same instance) and swaps to 1.1.0 with the key, its
value and its etag kept. The commands are the ones in docs/plugin-authors.md, "Start from a template"."""

import os
import shutil
from pathlib import Path

import pytest

from plugin_new_project import MAKE_TIMEOUT_S, assert_generated_plugin, inspect, install, run, state_story

HEADER = Path(os.environ.get("MOLT_ROOT", Path(__file__).resolve().parents[2])) / "PluginKit/Sources/PluginABI/include/molt_plugin.h"
NAME = "demo-state"

pytestmark = pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None, reason="needs make and cc")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """`molt plugin new demo-state --kind state --language c DIR`, then `make -C DIR` and `make -C DIR VERSION=1.1.0`."""
    directory = tmp_path_factory.mktemp("plugin-new-state") / NAME
    created = run(os.environ["MOLT_BIN"], "plugin", "new", NAME, "--kind", "state", "--language", "c", directory)
    assert created.returncode == 0, created
    for args in ([], ["VERSION=1.1.0"]):
        built = run("make", "-C", directory, *args, timeout=MAKE_TIMEOUT_S)
        assert built.returncode == 0, built
    return directory


def test_the_generated_project_has_its_files_and_the_exact_abi_header(project):
    for name in (f"{NAME}.c", "Makefile", "README.md", "test/test_plugin.c", "include/molt_plugin.h"):
        assert (project / name).is_file(), name
    assert (project / "include/molt_plugin.h").read_bytes() == HEADER.read_bytes()
    source = (project / f"{NAME}.c").read_text()
    assert "__PLUGIN_NAME__" not in source and f'.name = "{NAME}"' in source and "MOLT_KIND_STATE" in source
    assert "MOLT_PLUGIN_HOLDS_STATE" in source and "molt_log(" in source
    # The author's part is apart from the plumbing.
    assert source.index("Part 1: YOUR LOGIC") < source.index("Part 2: ABI PLUMBING") < source.index("MOLT_EXPORT")


def test_make_test_checks_etags_first_write_in_place_config_and_state_transfer(project):
    tested = run("make", "-C", project, "test", timeout=MAKE_TIMEOUT_S)
    assert tested.returncode == 0, tested
    assert "all checks passed" in tested.stdout and "FAIL" not in tested.stderr, tested


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])
def test_both_versions_load_as_state_stores_with_abi_1_1_state_transfer_and_declared_keys(project, molt_bin, version):
    report = inspect(molt_bin, project / f"{NAME}-{version}.so")
    assert_generated_plugin(report, NAME, version, "state", {"maxKeys": True, "logLabel": False})


def test_applied_in_molt_it_serves_applies_in_place_and_keeps_its_keys_across_a_version_swap(project, molt, molt_bin, tmp_path):
    plugins = tmp_path / "plugins.d"
    for version in ("1.0.0", "1.1.0"):
        install(project, plugins, f"VERSION={version}")
    state_story(molt_bin, molt([], plugins_dir=plugins), NAME)
