"""Configuration layers: a component's effective configuration is common < app < local, merged key by key
(common = etcd `<prefix>common/`, app = etcd `<prefix>apps/<app-id>/`, local = the sidecar's own files:
`--components` and `--agents-file-directory`). A change in one layer re-applies only the components whose
merged result changed; a component exists while any layer defines it.

Observed through Control ListComponents (active metadata, generation, last result) and WatchApplies: "not
re-applied" means no apply event at all and the same last result. Barriers are later etcd revisions (a
marker component) that the agent handles after the change under test, never sleeps.
"""

import os

from conftest import running_config, app_key, assert_maxlocks_limit, common_key, result_of, unix_ms, wait_config, wait_removed

APP_ID = "checkout"
OTHER_APP = "billing"


def write_atomically(path, text):
    temporary = path.parent / f".{path.name}.tmp"
    temporary.write_text(text)
    os.rename(temporary, path)


class Markers:
    """Barrier: a new common component; once molt runs it, every earlier revision has been handled."""

    def __init__(self, server, sidecar, components):
        self.server, self.sidecar, self.components = server, sidecar, components
        self.count = 0

    def __call__(self):
        self.count += 1
        name = f"marker-{self.count}"
        self.server.put(common_key(name), self.components.lock(name))
        wait_config(self.sidecar, name, {})


def test_first_sync_applies_each_merged_config_once(molt, etcd, components):
    """The first sync reads every layer at once: a component is added with its merged configuration, not
    added from one layer and then re-applied for the next (a transient config the app never asked for;
    for a state store, a connection to the common layer's host)."""
    server = etcd()
    lock = components.lock
    server.put(common_key("lock-a"), lock("lock-a", maxLocks="10", sweepIntervalMs="500", buckets="1024"))
    server.put(app_key(APP_ID, "lock-a"), lock("lock-a", maxLocks="3", buckets="64"))
    sidecar = molt([], app_id=APP_ID, extra_args=server.molt_args())
    watcher = sidecar.watch_applies()
    barrier = Markers(server, sidecar, components)
    barrier()  # every apply of the first sync is in the history by now
    a = sidecar.component("lock", "lock-a")
    assert dict(a.metadata) == running_config(a.plugin, {"maxLocks": "3", "sweepIntervalMs": "500", "buckets": "64"}), a
    applies = [(e.action, e.new_generation) for e in watcher.since(0, "lock", "lock-a")]
    assert applies == [("added", 1)], f"lock-a was applied {len(applies)} times by the first sync: {applies}"
    watcher.close()


def test_common_app_and_local_layers(molt, etcd, components, tmp_path):
    server = etcd()
    lock = components.lock
    server.put(common_key("lock-a"), lock("lock-a", maxLocks="10", sweepIntervalMs="500"))
    server.put(common_key("lock-b"), lock("lock-b", maxLocks="10", sweepIntervalMs="500"))
    server.put(common_key("lock-c"), lock("lock-c", maxLocks="50", sweepIntervalMs="100"))
    server.put(app_key(APP_ID, "lock-a"), lock("lock-a", maxLocks="3"))
    server.put(app_key(OTHER_APP, "lock-b"), lock("lock-b", maxLocks="99"))  # not this sidecar's app: ignored
    local = tmp_path / "local"
    local.mkdir()

    # lock-c is also a bootstrap component (local layer): its maxLocks beats common's.
    sidecar = molt([lock("lock-c", maxLocks="5")], app_id=APP_ID,
                   extra_args=server.molt_args() + ["--agents-file-directory", str(local)])
    barrier = Markers(server, sidecar, components)

    # Ready means synced: every component runs its merged configuration.
    assert sidecar.given_metadata_of("lock", "lock-a") == {"maxLocks": "3", "sweepIntervalMs": "500"}
    assert sidecar.given_metadata_of("lock", "lock-b") == {"maxLocks": "10", "sweepIntervalMs": "500"}
    assert sidecar.given_metadata_of("lock", "lock-c") == {"maxLocks": "5", "sweepIntervalMs": "100"}
    assert_maxlocks_limit(sidecar, "lock-a", 3)
    watcher = sidecar.watch_applies()

    # 1. maxLocks changes in common for both: lock-b follows; lock-a's effective config is unchanged (its app
    #    layer sets maxLocks), so it gets no apply at all.
    barrier()  # the first sync's applies are all recorded
    a_before = result_of(sidecar.component("lock", "lock-a"))
    since = unix_ms()
    server.put(common_key("lock-a"), lock("lock-a", maxLocks="20", sweepIntervalMs="500"))
    server.put(common_key("lock-b"), lock("lock-b", maxLocks="20", sweepIntervalMs="500"))
    b = wait_config(sidecar, "lock-b", {"maxLocks": "20", "sweepIntervalMs": "500"}, since=since)
    assert (b.generation, b.last_result.action) == (1, "applied-in-place"), b.last_result
    barrier()
    a = sidecar.component("lock", "lock-a")
    assert dict(a.metadata) == running_config(a.plugin, {"maxLocks": "3", "sweepIntervalMs": "500"}), a
    assert result_of(a) == a_before, f"lock-a was applied again although its merged config did not change: {a}"
    assert watcher.since(since, "lock", "lock-a") == [], watcher.since(since, "lock", "lock-a")

    # 2. A key lock-a's app layer does not set changes in common: both are applied, lock-a keeps its override.
    since = unix_ms()
    server.put(common_key("lock-a"), lock("lock-a", maxLocks="20", sweepIntervalMs="250"))
    server.put(common_key("lock-b"), lock("lock-b", maxLocks="20", sweepIntervalMs="250"))
    a = wait_config(sidecar, "lock-a", {"maxLocks": "3", "sweepIntervalMs": "250"}, since=since)
    assert (a.generation, a.last_result.action) == (1, "applied-in-place"), a.last_result
    b = wait_config(sidecar, "lock-b", {"maxLocks": "20", "sweepIntervalMs": "250"}, since=since)
    assert (b.generation, b.last_result.action) == (1, "applied-in-place"), b.last_result

    # 3. The app override deleted: lock-a falls back to common; lock-b is not touched.
    b_before = result_of(sidecar.component("lock", "lock-b"))
    since = unix_ms()
    server.delete(app_key(APP_ID, "lock-a"))
    a = wait_config(sidecar, "lock-a", {"maxLocks": "20", "sweepIntervalMs": "250"}, since=since)
    assert (a.generation, a.last_result.action) == (1, "applied-in-place"), a.last_result
    barrier()
    assert result_of(sidecar.component("lock", "lock-b")) == b_before
    assert watcher.since(since, "lock", "lock-b") == []

    # 4. A local file (--agents-file-directory) beats both etcd layers, key by key.
    local_file = local / "lock-a.json"
    since = unix_ms()
    write_atomically(local_file, '{"components": [{"kind": "lock", "name": "lock-a", "plugin": "memorylock", '
                                 '"metadata": {"maxLocks": "7"}}]}')
    wait_config(sidecar, "lock-a", {"maxLocks": "7", "sweepIntervalMs": "250"}, since=since)
    assert_maxlocks_limit(sidecar, "lock-a", 7, owner="local", held=3)  # 3 held since the first check
    #    An app override under a local one changes nothing.
    a_before = result_of(sidecar.component("lock", "lock-a"))
    since = unix_ms()
    server.put(app_key(APP_ID, "lock-a"), lock("lock-a", maxLocks="4"))
    barrier()
    a = sidecar.component("lock", "lock-a")
    assert dict(a.metadata) == running_config(a.plugin, {"maxLocks": "7", "sweepIntervalMs": "250"}) and result_of(a) == a_before, a
    assert watcher.since(since, "lock", "lock-a") == []
    #    A common key the local file does not set still comes through.
    server.put(common_key("lock-a"), lock("lock-a", maxLocks="20", sweepIntervalMs="300"))
    wait_config(sidecar, "lock-a", {"maxLocks": "7", "sweepIntervalMs": "300"})
    #    The local file deleted: the component stays (etcd still defines it), with the app override back on top.
    since = unix_ms()
    local_file.unlink()
    a = wait_config(sidecar, "lock-a", {"maxLocks": "4", "sweepIntervalMs": "300"}, since=since)
    assert a.generation == 1, a
    removals = [e for e in watcher.since(since, "lock", "lock-a") if e.action == "removed"]
    assert not removals, f"lock-a was removed although etcd still defines it: {removals}"

    # 5. A component exists while any layer defines it. lock-b: only another app's layer is left, which this
    #    sidecar ignores: removed. lock-c: the bootstrap file still defines it: back to the local config alone.
    server.delete(common_key("lock-b"))
    wait_removed(sidecar, "lock-b")
    since = unix_ms()
    server.delete(common_key("lock-c"))
    c = wait_config(sidecar, "lock-c", {"maxLocks": "5"}, since=since)
    assert c.generation == 1, c
    assert sidecar.try_lock("lock-c", "still-here", "o")
    watcher.close()
