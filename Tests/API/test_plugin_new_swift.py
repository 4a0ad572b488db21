"""`molt plugin new --language swift`: for a lock and a state store, the generated SwiftPM project (PluginKit by
path, from --pluginkit) builds with `make` into two versions from one source (NAME-1.0.0.so, NAME-1.1.0.so),
`make test` passes on both (the C template's dlopen test), both load (kind, ABI 1.2, holds state, state format 1,
declared keys), and in a real `molt serve` each is applied, serves a call over HTTP, applies a key in place
(same instance) and swaps to 1.1.0 with its state kept. Without a PluginKit path the command is refused.
Swift builds take a minute or more here: each project is built once per module."""

import os
import shutil
from pathlib import Path

import pytest

from plugin_new_project import assert_generated_plugin, inspect, install, lock_story, run, state_story

ROOT = Path(os.environ.get("MOLT_ROOT", Path(__file__).resolve().parents[2]))
PLUGINKIT = ROOT / "PluginKit"
SWIFT_BUILD_TIMEOUT_S = 1200
KEYS = {"lock": {"maxLocks": True, "logLabel": False}, "state": {"maxKeys": True, "logLabel": False}}
MODULES = {"lock": "DemoSwiftLock", "state": "DemoSwiftState"}

pytestmark = pytest.mark.skipif(any(shutil.which(t) is None for t in ("make", "cc", "swift")),
                                reason="needs make, cc and swift")


def generate_and_build(tmp_path_factory, kind):
    """`molt plugin new demo-swift-KIND --kind KIND --language swift --pluginkit PluginKit DIR`, then `make -C DIR`."""
    name = f"demo-swift-{kind}"
    directory = tmp_path_factory.mktemp(f"plugin-new-swift-{kind}") / name
    env = {k: v for k, v in os.environ.items() if k != "MOLT_PLUGINKIT_PATH"}
    created = run(os.environ["MOLT_BIN"], "plugin", "new", name, "--kind", kind, "--language", "swift",
                  "--pluginkit", PLUGINKIT, directory, env=env)
    assert created.returncode == 0, created
    built = run("make", "-C", directory, timeout=SWIFT_BUILD_TIMEOUT_S, env=env)
    assert built.returncode == 0, built
    return name, directory


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    """Each kind's project, generated and built on first use, once per module."""
    built = {}

    def get(kind):
        if kind not in built:
            built[kind] = generate_and_build(tmp_path_factory, kind)
        return built[kind]
    return get


@pytest.mark.parametrize("kind", ["lock", "state"])
def test_the_generated_package_takes_pluginkit_by_the_given_path_and_has_two_version_targets(projects, kind):
    name, project = projects(kind)
    module = MODULES[kind]
    for path in ("Package.swift", "Makefile", "README.md", ".gitignore", f"Sources/{module}/{module}.swift",
                 f"Sources/{module}V1/{module}V1.swift", f"Sources/{module}V2/{module}V2.swift",
                 "test/test_plugin.c", "include/molt_plugin.h"):
        assert (project / path).is_file(), path
    package = (project / "Package.swift").read_text()
    assert f'Context.environment["MOLT_PLUGINKIT_PATH"] ?? "{PLUGINKIT.resolve()}"' in package, package
    source = (project / f"Sources/{module}/{module}.swift").read_text()
    assert "__MODULE__" not in source and "__PLUGIN_NAME__" not in source and f'"{name}"' in source
    assert "holdsState: Bool { true }" in source and "StateTransferable" in source and "InPlaceConfigurable" in source
    assert source.index("Part 1: YOUR LOGIC") < source.index("Part 2: PLUMBING")
    resolved = (project / "Package.resolved")
    assert not resolved.exists() or "location" not in resolved.read_text()  # nothing fetched: PluginKit only


@pytest.mark.parametrize("kind", ["lock", "state"])
def test_make_test_passes_on_both_versions(projects, kind):
    _, project = projects(kind)
    tested = run("make", "-C", project, "test", timeout=SWIFT_BUILD_TIMEOUT_S)
    assert tested.returncode == 0, tested
    assert tested.stdout.count("all checks passed") == 2 and "FAIL" not in tested.stderr, tested


@pytest.mark.parametrize("kind", ["lock", "state"])
@pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])
def test_both_versions_load_with_abi_1_1_holds_state_state_transfer_and_declared_keys(projects, molt_bin, kind, version):
    name, project = projects(kind)
    report = inspect(molt_bin, project / f"{name}-{version}.so")
    assert_generated_plugin(report, name, version, kind, KEYS[kind])
    assert report["language"] == "swift", report


@pytest.mark.parametrize("kind", ["lock", "state"])
def test_applied_in_molt_it_serves_applies_in_place_and_keeps_its_state_across_a_version_swap(projects, molt, molt_bin, tmp_path, kind):
    name, project = projects(kind)
    plugins = tmp_path / "plugins.d"
    install(project, plugins, timeout=SWIFT_BUILD_TIMEOUT_S)
    assert sorted(p.name for p in plugins.glob("*.so")) == [f"{name}-1.0.0.so", f"{name}-1.1.0.so"]
    story = lock_story if kind == "lock" else state_story
    story(molt_bin, molt([], plugins_dir=plugins), name)


def test_without_a_pluginkit_path_a_swift_project_is_refused(molt_bin, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MOLT_PLUGINKIT_PATH"}
    refused = run(molt_bin, "plugin", "new", "demo", "--kind", "lock", "--language", "swift", tmp_path / "out", env=env)
    assert refused.returncode == 64 and "--pluginkit" in refused.stderr and "MOLT_PLUGINKIT_PATH" in refused.stderr, refused
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("given", ["nowhere", "Sources"])
def test_a_pluginkit_path_that_is_not_pluginkit_is_refused(molt_bin, tmp_path, given):
    path = tmp_path / given if given == "nowhere" else ROOT / given
    refused = run(molt_bin, "plugin", "new", "demo", "--kind", "state", "--language", "swift", "--pluginkit", path, tmp_path / "out")
    assert refused.returncode == 64 and "PluginKit path" in refused.stderr, refused
    assert not (tmp_path / "out").exists()


def test_the_pluginkit_path_may_come_from_the_environment(molt_bin, tmp_path):
    env = {**os.environ, "MOLT_PLUGINKIT_PATH": str(PLUGINKIT)}
    created = run(molt_bin, "plugin", "new", "demo", "--kind", "lock", "--language", "swift", tmp_path / "out", env=env)
    assert created.returncode == 0, created
    assert f'?? "{PLUGINKIT.resolve()}"' in (tmp_path / "out/Package.swift").read_text()
