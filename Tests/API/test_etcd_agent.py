"""The etcd agent: `molt serve --agents-etcd-endpoints H:P [--agents-etcd-prefix /molt/] --app-id APP`
applies the component files stored under `<prefix>common/` (every sidecar) and `<prefix>apps/<APP>/`
(this app only) in a real etcd, and keeps following them through etcd restarts and compactions.

Everything is observed through molt's Control API (ListComponents: generation, active metadata, last
result; WatchApplies) and app calls; log text only where nothing else can tell (an unparseable value is
reported, the compaction path was taken). Every wait is a poll with a timeout.
"""

import os
import re
import signal
import time

from conftest import (running_config, DAPR_LOCK_YAML, CONVERGE_TIMEOUT_S, app_key, assert_maxlocks_limit, common_key, result_of, unix_ms, wait_config,
                      wait_for, wait_removed)

APP_ID = "orders"


def etcd_molt(molt, server, *, app_id=APP_ID, components=(), extra_args=(), prefix=None, **kwargs):
    """A molt serve whose etcd agent watches `server`."""
    return molt(list(components), app_id=app_id, extra_args=server.molt_args(prefix) + list(extra_args), **kwargs)


def reported_lines(sidecar, log_offset, needle):
    """stderr lines written after `log_offset` at warning level or above that mention `needle`."""
    lines = sidecar.stderr()[log_offset:].splitlines()
    return [line for line in lines if needle in line and re.match(r"^\S+ (warning|error|critical) ", line)]


def test_put_change_delete_and_invalid_values(molt, etcd, components):
    server = etcd()
    sidecar = etcd_molt(molt, server, components=[components.lock("bootlock")])
    watcher = sidecar.watch_applies()
    key = common_key("etcdlock")

    # A new key: the component is added, and the plugin runs with the stored config.
    since = unix_ms()
    server.put(key, components.lock("etcdlock", maxLocks="2", buckets="64"))
    status = wait_config(sidecar, "etcdlock", {"maxLocks": "2", "buckets": "64"}, since=since)
    assert status.generation == 1 and status.last_result.action == "added", status
    assert status.plugin.startswith("memorylock@"), status.plugin
    assert_maxlocks_limit(sidecar, "etcdlock", 2, owner="first")

    # A changed value, in-place key: applied in place, same generation, and the plugin has the new limit.
    since = unix_ms()
    server.put(key, components.lock("etcdlock", maxLocks="20", buckets="64"))
    status = wait_config(sidecar, "etcdlock", {"maxLocks": "20", "buckets": "64"}, since=since)
    assert status.generation == 1 and status.last_result.action == "applied-in-place", status.last_result
    assert sidecar.try_lock("etcdlock", "after-in-place", "second")

    # A changed value in Dapr Component YAML, a key that needs a reload: a new generation.
    since = unix_ms()
    server.put(key, DAPR_LOCK_YAML.format(name="etcdlock", max_locks=20, buckets=128))
    status = wait_config(sidecar, "etcdlock", {"maxLocks": "20", "buckets": "128"}, since=since)
    assert status.generation == 2 and status.last_result.action == "reloaded", status.last_result
    good = result_of(status)

    # A value that does not parse: reported, the running component untouched, molt keeps serving.
    log_offset = len(sidecar.stderr())
    since = unix_ms()
    server.put(key, "apiVersion: dapr.io/v1alpha1\nkind: Component\nspec: [unclosed\n")
    wait_for(lambda: reported_lines(sidecar, log_offset, "common/etcdlock"),
             "the unparseable value of /molt/common/etcdlock to be reported (a warning or error naming the key)")
    status = sidecar.component("lock", "etcdlock")
    assert result_of(status) == good and dict(status.metadata) == running_config(status.plugin, {"maxLocks": "20", "buckets": "128"}), status
    assert watcher.since(since, "lock", "etcdlock") == [], "an unparseable value reached the engine"
    assert sidecar.try_lock("etcdlock", "after-invalid", "third"), "molt stopped serving after an invalid value"
    assert sidecar.http("GET", "/v1.0/healthz").status == 204

    # A value the plugin refuses: a failed apply (the plugin's message), the running generation untouched.
    since = unix_ms()
    server.put(key, components.lock("etcdlock", maxLocks="lots", buckets="128"))
    failed = watcher.wait_for(lambda e: e.name == "etcdlock" and e.finished_unix_ms >= since, "the refused value",
                              timeout=CONVERGE_TIMEOUT_S)
    assert failed.action == "failed" and 'invalid value "lots"' in failed.error, failed
    status = sidecar.component("lock", "etcdlock")
    assert status.generation == 2 and dict(status.metadata) == running_config(status.plugin, {"maxLocks": "20", "buckets": "128"}), status
    assert sidecar.try_lock("etcdlock", "after-refused", "fourth")

    # A valid value again: applied (the agent did not stop at the bad ones).
    since = unix_ms()
    server.put(key, components.lock("etcdlock", maxLocks="30", buckets="128"))
    status = wait_config(sidecar, "etcdlock", {"maxLocks": "30", "buckets": "128"}, since=since)
    assert status.generation == 2 and status.last_result.action == "applied-in-place", status.last_result

    # Keys of another app and keys outside the prefix are not this sidecar's: ignored. The marker (a later
    # revision under common/) shows the agent got past them.
    server.put(app_key("billing", "otherapplock"), components.lock("otherapplock"))
    server.put("/elsewhere/common/straylock", components.lock("straylock"))
    server.put(common_key("marker"), components.lock("marker"))
    wait_config(sidecar, "marker", {})
    listed = sidecar.list_components()
    assert ("lock", "otherapplock") not in listed and ("lock", "straylock") not in listed, sorted(listed)

    # The key deleted: the component is removed; the bootstrap component is not etcd's and stays.
    since = unix_ms()
    server.delete(key)
    wait_removed(sidecar, "etcdlock")
    removed = watcher.wait_for(lambda e: e.name == "etcdlock" and e.finished_unix_ms >= since, "the removal")
    assert removed.action == "removed", removed
    assert ("lock", "bootlock") in sidecar.list_components()
    assert sidecar.try_lock("bootlock", "still-serving", "o")
    watcher.close()


def test_custom_prefix(molt, etcd, components):
    server = etcd()
    server.put(common_key("defaultprefixlock"), components.lock("defaultprefixlock"))
    server.put(common_key("fleetlock", prefix="/fleet-7/"), components.lock("fleetlock", maxLocks="7"))
    sidecar = etcd_molt(molt, server, prefix="/fleet-7/")
    # Ready means the first sync is done: the component is there at once.
    assert sidecar.given_metadata_of("lock", "fleetlock") == {"maxLocks": "7"}
    assert ("lock", "defaultprefixlock") not in sidecar.list_components()
    server.put(app_key(APP_ID, "fleetapplock", prefix="/fleet-7/"), components.lock("fleetapplock", maxLocks="3"))
    wait_config(sidecar, "fleetapplock", {"maxLocks": "3"})


def test_etcd_restart_mid_stream_misses_no_change(molt, etcd, components):
    server = etcd()
    for name in ("keep", "change", "reload", "gone"):
        server.put(common_key(name), components.lock(name, maxLocks="10", buckets="64"))
    sidecar = etcd_molt(molt, server)
    # After readiness the first sync is done.
    for name in ("keep", "change", "reload", "gone"):
        assert sidecar.given_metadata_of("lock", name) == {"maxLocks": "10", "buckets": "64"}, name
    keep_before = result_of(sidecar.component("lock", "keep"))

    server.stop()
    # While etcd is down molt keeps serving its last configuration: the control plane and the app API answer
    # (polled for long enough to cover molt noticing the loss and at least one reconnection attempt).
    served_until = time.monotonic() + 2.0
    calls = 0
    while time.monotonic() < served_until:
        listed = sidecar.list_components()
        assert {("lock", n) for n in ("keep", "change", "reload", "gone")} <= set(listed), sorted(listed)
        # One resource, one owner: granted the first time, then already held; answered either way.
        assert sidecar.try_lock("keep", "while-down", "o") is (calls == 0)
        calls += 1
        time.sleep(0.1)
    assert sidecar.alive()

    server.start()
    since = unix_ms()
    # At once, most likely before molt's reconnection backoff has ended: every change must still arrive.
    server.put(common_key("change"), components.lock("change", maxLocks="11", buckets="64"))
    server.put(common_key("reload"), components.lock("reload", maxLocks="10", buckets="128"))
    server.put(common_key("change"), components.lock("change", maxLocks="12", buckets="64"))
    server.delete(common_key("gone"))
    server.put(common_key("added"), components.lock("added", maxLocks="5"))
    server.put(common_key("change"), components.lock("change", maxLocks="13", buckets="64"))

    status = wait_config(sidecar, "change", {"maxLocks": "13", "buckets": "64"})
    assert status.generation == 1, status
    status = wait_config(sidecar, "reload", {"maxLocks": "10", "buckets": "128"}, since=since)
    assert status.generation == 2 and status.last_result.action == "reloaded", status.last_result
    wait_config(sidecar, "added", {"maxLocks": "5"})
    wait_removed(sidecar, "gone")
    keep = sidecar.component("lock", "keep")
    assert result_of(keep) == keep_before, f"lock/keep did not change in etcd but was applied again: {keep}"

    # The watch is live again: a later change arrives too.
    server.put(common_key("change"), components.lock("change", maxLocks="14", buckets="64"))
    wait_config(sidecar, "change", {"maxLocks": "14", "buckets": "64"})


def test_resume_from_a_compacted_revision_resyncs(molt, etcd, components):
    server = etcd()
    for name in ("keep", "change", "gone"):
        server.put(common_key(name), components.lock(name, maxLocks="10"))
    sidecar = etcd_molt(molt, server)
    for name in ("keep", "change", "gone"):
        assert sidecar.given_metadata_of("lock", name) == {"maxLocks": "10"}, name
    keep_before = result_of(sidecar.component("lock", "keep"))
    log_offset = len(sidecar.stderr())

    # molt frozen; etcd restarted first so that its watch connection is gone without having carried any of
    # the changes below (a live watch would have pushed them into molt's socket before the compaction).
    # Then the changes, and a compaction past all of them: molt's next watch starts at a compacted revision.
    os.kill(sidecar.process.pid, signal.SIGSTOP)
    try:
        server.stop()
        server.start()
        server.put(common_key("change"), components.lock("change", maxLocks="42"))
        server.delete(common_key("gone"))
        server.put(common_key("added"), components.lock("added", maxLocks="6"))
        server.put(common_key("change"), components.lock("change", maxLocks="43"))
        revision = server.revision()
        server.compact(revision)
    finally:
        os.kill(sidecar.process.pid, signal.SIGCONT)

    wait_config(sidecar, "change", {"maxLocks": "43"})
    wait_config(sidecar, "added", {"maxLocks": "6"})
    wait_removed(sidecar, "gone")
    keep = sidecar.component("lock", "keep")
    assert result_of(keep) == keep_before, f"lock/keep did not change in etcd but was applied again: {keep}"
    # Only the log tells that this went through the compaction path (a full resync).
    lines = sidecar.stderr()[log_offset:].splitlines()
    assert [line for line in lines if "etcd agent" in line and "compact" in line.lower()], \
        "no 'etcd agent' log line mentions the compaction:\n" + "\n".join(l for l in lines if "etcd" in l)

    # And the watch goes on from the resync.
    server.put(common_key("change"), components.lock("change", maxLocks="44"))
    wait_config(sidecar, "change", {"maxLocks": "44"})


def test_molt_starts_while_etcd_is_down_and_applies_it_once_up(molt, etcd, components):
    server = etcd()
    server.put(common_key("frometcd"), components.lock("frometcd", maxLocks="5"))
    server.stop()

    started = time.monotonic()
    sidecar = etcd_molt(molt, server, components=[components.lock("bootlock")],
                        extra_args=["--readiness-timeout-ms", "2000"])
    became_ready = time.monotonic() - started
    assert became_ready < 15, f"molt took {became_ready:.1f} s to become ready with etcd down (readiness timeout 2 s)"
    # It serves its bootstrap components.
    assert sidecar.try_lock("bootlock", "r", "o")
    assert ("lock", "frometcd") not in sidecar.list_components()

    since = unix_ms()
    server.start()
    status = wait_config(sidecar, "frometcd", {"maxLocks": "5"}, since=since)
    assert status.last_result.action == "added"
    assert sidecar.try_lock("frometcd", "r", "o")
    # Then it follows changes.
    server.put(common_key("frometcd"), components.lock("frometcd", maxLocks="6"))
    wait_config(sidecar, "frometcd", {"maxLocks": "6"})


def test_three_sidecars_apply_one_put(molt, etcd, components):
    server = etcd()
    server.put(common_key("shared"), components.lock("shared", maxLocks="10"))
    sidecars = [etcd_molt(molt, server, app_id=app) for app in ("orders", "orders", "billing")]
    for sidecar in sidecars:
        assert sidecar.given_metadata_of("lock", "shared") == {"maxLocks": "10"}

    since = unix_ms()
    server.put(common_key("shared"), components.lock("shared", maxLocks="77"))
    for sidecar in sidecars:
        status = wait_config(sidecar, "shared", {"maxLocks": "77"}, since=since)
        assert status.generation == 1 and status.last_result.action == "applied-in-place", status.last_result
        assert_maxlocks_limit(sidecar, "shared", 77)

    # An app layer reaches its own app's sidecars only.
    billing = sidecars[2]
    billing_before = result_of(billing.component("lock", "shared"))
    server.put(app_key("orders", "shared"), components.lock("shared", maxLocks="5"))
    for sidecar in sidecars[:2]:
        wait_config(sidecar, "shared", {"maxLocks": "5"})
    server.put(common_key("marker"), components.lock("marker"))
    wait_config(billing, "marker", {})
    status = billing.component("lock", "shared")
    assert dict(status.metadata) == running_config(status.plugin, {"maxLocks": "77"}) and result_of(status) == billing_before, status


def test_key_deleted_while_molt_was_stopped_is_removed_at_restart(molt, etcd, components, tmp_path):
    """With --state-directory a restart restores the running components; the etcd layer remembered beside
    them lets the first sync remove a component whose key was deleted while molt was down."""
    server = etcd()
    state_args = ["--state-directory", str(tmp_path / "state")]
    server.put(common_key("stays"), components.lock("stays", maxLocks="10"))
    server.put(common_key("deleted"), components.lock("deleted", maxLocks="10"))
    sidecar = etcd_molt(molt, server, extra_args=state_args)
    assert {("lock", "stays"), ("lock", "deleted")} <= set(sidecar.list_components())
    assert sidecar.stop() == 0, sidecar.stderr()[-3000:]

    server.delete(common_key("deleted"))
    server.put(common_key("stays"), components.lock("stays", maxLocks="11"))
    sidecar = etcd_molt(molt, server, extra_args=state_args)
    # Ready means the first sync is done: both changes made while molt was down are in effect.
    listed = sidecar.list_components()
    assert ("lock", "deleted") not in listed, f"restored although its key was deleted meanwhile: {sorted(listed)}"
    assert dict(listed[("lock", "stays")].metadata) == running_config(listed[("lock", "stays")].plugin, {"maxLocks": "11"}), listed[("lock", "stays")]


def test_several_endpoints_with_the_first_one_down(molt, etcd, components, free_port):
    """--agents-etcd-endpoints is repeatable: with the first endpoint refusing connections molt syncs and
    watches through the next one."""
    server = etcd()
    server.put(common_key("viasecond"), components.lock("viasecond", maxLocks="8"))
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    sidecar = molt([], app_id=APP_ID, extra_args=["--agents-etcd-endpoints", dead, "--agents-etcd-endpoints", server.endpoint])
    wait_config(sidecar, "viasecond", {"maxLocks": "8"})
    server.put(common_key("viasecond"), components.lock("viasecond", maxLocks="9"))
    wait_config(sidecar, "viasecond", {"maxLocks": "9"})
