"""`molt serve` reads the plugins' identities in a child process (`molt plugin identify`): the serving
process maps only the plugins its components run, and a plugin library that crashes or hangs as soon as it is
mapped is refused with the reason while molt starts and serves.

Before this, molt mapped every file of the plugins directory to read its identity, and kept what cannot be
unmapped: the Swift plugins (RTLD_NODELETE) and the `-z nodelete` libraries a C plugin pulls in (etcd-config's
libcurl brings OpenSSL and p11-kit); a crashing constructor took molt down with it.
"""

import shutil
from pathlib import Path


# Libraries only etcd-config (libcurl) and the Swift plugins bring into a process that maps them.
FOREIGN = ("libcurl", "libcrypto", "libssl", "libp11-kit")


def mapped(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_serve_maps_only_the_plugins_its_components_run(molt, components, plugins_dir):
    # plugins.d holds every plugin of the project: etcd-config (libcurl), two Swift plugins, many C ones.
    assert (plugins_dir / "etcd-config-1.0.0.so").exists() and (plugins_dir / "text-tools-1.0.0.so").exists()
    sidecar = molt([components.lock("lockstore", plugin="memorylock", version="2.0.0")])
    maps = mapped(sidecar.process.pid)
    assert [name for name in FOREIGN if name in maps] == []
    assert "libswiftCore" in maps  # molt's own
    # Exactly one plugin binary is mapped: memorylock 2.0.0, from molt's private staging directory.
    staged = {line.split()[-2] if line.endswith("(deleted)") else line.split()[-1]
              for line in maps.splitlines() if "/molt-staging-" in line}
    assert len(staged) == 1, staged
    # The catalog still knows every plugin (any can be applied without a restart).
    answer = sidecar.http("POST", "/v1.0-alpha1/lock/lockstore", {"resourceId": "r", "lockOwner": "o", "expiryInSeconds": 5})
    assert answer.status == 200
    log = sidecar.stderr()
    for plugin in ("etcd-config@1.0.0", "text-tools@1.0.0", "redis-state@1.0.0", "in-memory-pubsub@1.1.0"):
        assert plugin in log.split("available=")[1].split("\n")[0], plugin
    assert "plugin skipped" not in log


def test_a_plugin_that_crashes_or_hangs_when_mapped_is_refused_and_molt_serves(molt, components, plugins_dir,
                                                                            fixtures_dir, tmp_path):
    directory = tmp_path / "plugins"
    directory.mkdir(mode=0o755)
    for source in (plugins_dir / "memorylock-2.0.0.so", fixtures_dir / "misbehaving" / "crash-on-load-1.0.0.so",
                   fixtures_dir / "misbehaving" / "hang-on-load-1.0.0.so"):
        shutil.copy2(source, directory / source.name)
    # The init timeout bounds reading the identities too.
    sidecar = molt([components.lock("lockstore", plugin="memorylock")], plugins_dir=directory,
                   extra_args=["--init-timeout-ms", "2000"])
    answer = sidecar.http("POST", "/v1.0-alpha1/lock/lockstore", {"resourceId": "r", "lockOwner": "o", "expiryInSeconds": 5})
    assert (answer.status, answer.json()) == (200, {"success": True})
    log = sidecar.stderr()
    skipped = [line for line in log.splitlines() if "plugin skipped" in line]
    crash = [line for line in skipped if "crash-on-load-1.0.0.so" in line]
    hang = [line for line in skipped if "hang-on-load-1.0.0.so" in line]
    assert len(crash) == 1 and "died of signal 11 (Segmentation fault) while reading it" in crash[0], skipped
    assert len(hang) == 1 and "did not finish within 2.0 seconds" in hang[0], skipped
    assert 'available=["memorylock@2.0.0"]' in log
    # The hung child was killed: no inspecting process is left behind (children of any of molt's threads).
    tasks = Path(f"/proc/{sidecar.process.pid}/task")
    children = [child for task in tasks.iterdir() for child in (task / "children").read_text().split()]
    assert children == []
