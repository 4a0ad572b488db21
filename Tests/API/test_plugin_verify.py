"""`molt plugin verify`: the shipped plugins pass (memorylock, in-memory and in-memory-pubsub each against their
other version, redis-state and redis-streams against a real redis-server, the docs' C and Swift examples, the
Swift two-version fixture), and
each way a plugin can break the contract fails the check that names it, with exit status 1: a file that is
not a plugin, an unlock by another owner that releases the lock, an import that refuses or loses the
exported state, a call never completed, a leak per init, in-instance state not declared, an init that fails
or never gets READY, a required key not given, an unknown key. Usage errors exit 64. The broken plugin is
Tests/Fixtures/CPlugins/broken_lock.c (correct with its defaults; each key breaks one rule), and for pubsub
broken_pubsub.c (the same way: acked messages delivered again, deliveries after unsubscribe). The commands are
the ones of docs/plugin-authors.md, "Check it: molt plugin verify".
"""

import json
import shutil
import subprocess

import pytest

CLI_TIMEOUT_S = 120


def verify(molt_bin, *args):
    return subprocess.run([str(molt_bin), "plugin", "verify", *map(str, args)], capture_output=True, text=True,
                          timeout=CLI_TIMEOUT_S)


def lines(done, status):
    """The check lines with `status` (ok, FAIL, skip), as printed: 'STATUS  name: detail'."""
    return [line for line in done.stdout.splitlines() if line.split("  ", 1)[0].strip() == status]


def failed_line(done, check):
    """The FAIL line of `check`; fails the test when there is none."""
    found = [line for line in lines(done, "FAIL") if line.startswith(f"FAIL  {check}:")]
    assert found, f"no FAIL line for {check!r}:\n{done.stdout}\n{done.stderr}"
    return found[0]


def assert_passes(done, *, checks=()):
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert not lines(done, "FAIL"), done.stdout
    assert done.stdout.splitlines()[-1].startswith("PASS  "), done.stdout
    passed = "\n".join(lines(done, "ok"))
    for check in checks:
        assert f"ok    {check}:" in passed, f"{check!r} not ok:\n{done.stdout}"


LOCK_CHECKS = ("load", "config", "init", "holds state", "lock: acquire a free resource", "lock: another owner is refused",
               "lock: the owner re-locking is refused", "lock: unlock by another owner", "lock: unlock of a missing lock",
               "lock: unlock, then another owner locks", "lock: expiry", "lock: concurrent calls", "destroy", "init/destroy x50")
STATE_CHECKS = ("load", "config", "init", "holds state", "state: get of a missing key", "state: set, then get",
                "state: a stale etag is refused", "state: first-write on an existing key is refused", "state: delete",
                "state: bulk get", "state: transaction", "state: a failing transaction applies nothing", "state: concurrent calls", "destroy",
                "init/destroy x50")

PUBSUB_CHECKS = ("load", "config", "init", "holds state", "pubsub: publish", "pubsub: a subscriber gets its topic's messages",
                 "pubsub: other topics are not delivered", "pubsub: RETRY is delivered again", "pubsub: ACK is not delivered again",
                 "pubsub: DROP is not delivered again", "pubsub: a second answer to a delivery is ignored",
                 "pubsub: a refused deliver is delivered again", "pubsub: no deliver after unsubscribe",
                 "pubsub: concurrent calls", "destroy", "init/destroy x50")


@pytest.fixture(scope="module")
def broken_lock(fixtures_dir):
    return fixtures_dir / "broken-lock-1.0.0.so"


# ---------------------------------------------------------------------------------------------
# The shipped plugins pass


def test_memorylock_passes_with_state_transfer_to_and_from_its_previous_version(molt_bin, plugins_dir):
    done = verify(molt_bin, plugins_dir / "memorylock-2.0.0.so", "--previous", plugins_dir / "memorylock-1.0.0.so")
    assert_passes(done, checks=LOCK_CHECKS + (
        "load previous", "apply_config: the same config", "apply_config: an in-place change",
        "state transfer: a truncated export is refused",
        "state transfer: memorylock@2.0.0 -> memorylock@1.0.0 (format 1)",
        "state transfer: memorylock@1.0.0 -> memorylock@2.0.0 (format 1)"))
    assert any(line.startswith("ok    init/destroy x50: RSS ") for line in done.stdout.splitlines()), done.stdout


def test_in_memory_state_passes_with_state_transfer_to_and_from_its_previous_version(molt_bin, plugins_dir):
    done = verify(molt_bin, plugins_dir / "in-memory-1.1.0.so", "--previous", plugins_dir / "in-memory-1.0.0.so")
    assert_passes(done, checks=STATE_CHECKS + (
        "apply_config: the same config", "apply_config: an in-place change",
        "state transfer: export, import into a new instance (format 1)",
        "state transfer: in-memory@1.1.0 -> in-memory@1.0.0 (format 1)",
        "state transfer: in-memory@1.0.0 -> in-memory@1.1.0 (format 1)"))


def test_the_example_bindings_pass(molt_bin, plugins_dir):
    """Issue 18's examples: the C rate-limiter both ways between its versions, the Swift text-tools. verify does
    not call a binding's operations (it has no sample arguments for them): those checks say so and are skipped."""
    done = verify(molt_bin, plugins_dir / "rate-limiter-1.1.0.so", "--previous", plugins_dir / "rate-limiter-1.0.0.so")
    assert_passes(done, checks=("load", "load previous", "init", "apply_config: an in-place change",
                                "state transfer: a truncated export is refused",
                                "state transfer: rate-limiter@1.1.0 -> rate-limiter@1.0.0 (format 1)",
                                "state transfer: rate-limiter@1.0.0 -> rate-limiter@1.1.0 (format 1)"))
    assert any(line.startswith("skip  binding: concurrent calls") for line in done.stdout.splitlines()), done.stdout
    assert_passes(verify(molt_bin, plugins_dir / "text-tools-1.0.0.so"), checks=("load", "init"))


def test_redis_state_passes_against_a_real_redis_and_leaves_no_key(molt_bin, plugins_dir, redis_server):
    redis = redis_server()
    done = verify(molt_bin, plugins_dir / "redis-state-1.0.0.so", "--metadata", f"redisHost={redis.address}")
    assert_passes(done, checks=STATE_CHECKS + ("apply_config: the same config", "apply_config: an in-place change"))
    assert "skip  state transfer: no export/import" in done.stdout, done.stdout
    assert "ok    holds state: not declared, and none held: a key set in one instance is seen by another instance" in done.stdout
    assert not [key for key in redis.keys() if "molt-verify" in key], redis.keys()


@pytest.mark.parametrize("new, old", [("1.1.0", "1.0.0"), ("1.0.0", "1.1.0")])
def test_in_memory_pubsub_passes_with_its_messages_handed_to_and_from_its_previous_version(molt_bin, plugins_dir, new, old):
    done = verify(molt_bin, plugins_dir / f"in-memory-pubsub-{new}.so", "--previous", plugins_dir / f"in-memory-pubsub-{old}.so")
    assert_passes(done, checks=PUBSUB_CHECKS + (
        "load previous", "apply_config: the same config", "apply_config: an in-place change",
        "state transfer: export, import into a new instance (format 1)", "state transfer: a truncated export is refused",
        f"state transfer: in-memory-pubsub@{new} -> in-memory-pubsub@{old} (format 1)",
        f"state transfer: in-memory-pubsub@{old} -> in-memory-pubsub@{new} (format 1)"))
    if new == "1.1.0":
        assert "ok    state transfer: export, import into a new instance (format 2)" in done.stdout, done.stdout
    assert "5 messages (3 queued, 2 delivered and unanswered) handed over" in done.stdout, done.stdout
    assert "ok    holds state: declared: a message queued in one instance is not seen by another instance" in done.stdout
    # Its redelivery delay (1 s by default) is shortened, and the config line says so.
    config = [line for line in lines(done, "ok") if line.startswith("ok    config:")][0]
    assert "redeliverDelayMs=100" in config and "redeliverDelayMs shortened by verify" in config, config


def test_redis_streams_passes_against_a_real_redis(molt_bin, plugins_dir, redis_server):
    redis = redis_server()
    done = verify(molt_bin, plugins_dir / "redis-streams-1.0.0.so", "--metadata", f"redisHost={redis.address}")
    assert_passes(done, checks=PUBSUB_CHECKS)
    assert "skip  state transfer: no export/import" in done.stdout, done.stdout
    assert "ok    holds state: not declared, and none held: a message queued in one instance is seen by another instance" \
        in done.stdout, done.stdout
    config = [line for line in lines(done, "ok") if line.startswith("ok    config:")][0]
    assert "processingTimeout=300ms" in config and "redeliverInterval=100ms" in config, config
    # The checks' topics are streams of that Redis.
    assert [key for key in redis.keys() if key.startswith("molt-verify-")], redis.keys()


@pytest.mark.parametrize("example", ["minimal-lock.so", "minimal-swift-lock.so"])
def test_the_docs_examples_pass(molt_bin, fixtures_dir, example):
    done = verify(molt_bin, fixtures_dir / example)
    assert_passes(done, checks=LOCK_CHECKS)
    # They hold locks and transfer none: said, not failed (a reload of them is refused unless the loss is accepted).
    assert "skip  state transfer: no export/import, and the plugin declares MOLT_PLUGIN_HOLDS_STATE" in done.stdout, done.stdout
    assert "ok    holds state: declared: a lock taken in one instance is not seen by another instance" in done.stdout


def test_the_swift_two_version_plugin_passes_both_ways(molt_bin, fixtures_dir):
    done = verify(molt_bin, fixtures_dir / "swift-testlock-2.0.0.so", "--previous", fixtures_dir / "swift-testlock-1.0.0.so",
                  "--apply", "greeting=bonjour")
    assert_passes(done, checks=LOCK_CHECKS + (
        "apply_config: an in-place change",
        "state transfer: export, import into a new instance (format 1)",
        "state transfer: export, import into a new instance (format 2)",
        "state transfer: swift-testlock@2.0.0 -> swift-testlock@1.0.0 (format 1)",
        "state transfer: swift-testlock@1.0.0 -> swift-testlock@2.0.0 (format 1)"))


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None, reason="needs make and cc")
def test_a_project_from_molt_plugin_new_passes_both_ways(molt_bin, tmp_path):
    project = tmp_path / "demo-lock"
    created = subprocess.run([str(molt_bin), "plugin", "new", "demo-lock", "--kind", "lock", "--language", "c", str(project)],
                             capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    assert created.returncode == 0, created
    for args in ([], ["VERSION=1.1.0"]):
        built = subprocess.run(["make", "-C", str(project), *args], capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
        assert built.returncode == 0, built
    done = verify(molt_bin, project / "demo-lock-1.1.0.so", "--previous", project / "demo-lock-1.0.0.so")
    assert_passes(done, checks=LOCK_CHECKS + (
        "apply_config: an in-place change",
        "state transfer: demo-lock@1.1.0 -> demo-lock@1.0.0 (format 1)",
        "state transfer: demo-lock@1.0.0 -> demo-lock@1.1.0 (format 1)"))


def test_the_broken_fixture_passes_with_its_defaults_and_json_reports_every_check(molt_bin, broken_lock):
    done = verify(molt_bin, broken_lock, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["plugin"] == "broken-lock@1.0.0" and report["passed"] is True, report
    statuses = {check["name"]: check["status"] for check in report["checks"]}
    assert statuses["apply_config: an in-place change"] == "ok", statuses
    assert statuses["state transfer: export, import into a new instance (format 1)"] == "ok", statuses
    assert set(statuses.values()) == {"ok"}, statuses


# ---------------------------------------------------------------------------------------------
# Refusals: exit 1, and the failing check's line names it and what went wrong


def test_the_broken_pubsub_fixture_passes_with_its_defaults(molt_bin, fixtures_dir):
    done = verify(molt_bin, fixtures_dir / "broken-pubsub-1.0.0.so", "--cycles", "5")
    assert_passes(done, checks=PUBSUB_CHECKS[:-1] + ("init/destroy x5",))


def test_a_broker_that_redelivers_acked_messages_fails_the_ack_check(molt_bin, fixtures_dir):
    done = verify(molt_bin, fixtures_dir / "broken-pubsub-1.0.0.so", "--metadata", "redeliverAcked=true", "--cycles", "1")
    assert done.returncode == 1, done
    line = failed_line(done, "pubsub: ACK is not delivered again")
    assert "a message answered ACK was delivered again" in line, line
    assert "pubsub: ACK is not delivered again" in done.stdout.splitlines()[-1], done.stdout  # named in the summary
    assert "ok    pubsub: DROP is not delivered again" in done.stdout, done.stdout
    assert "ok    pubsub: RETRY is delivered again" in done.stdout, done.stdout


def test_a_broker_that_delivers_after_unsubscribe_fails_the_unsubscribe_check(molt_bin, fixtures_dir):
    done = verify(molt_bin, fixtures_dir / "broken-pubsub-1.0.0.so", "--metadata", "deliverAfterUnsubscribe=true",
                  "--cycles", "1")
    assert done.returncode == 1, done
    line = failed_line(done, "pubsub: no deliver after unsubscribe")
    assert "deliver was called" in line and "after unsubscribe from 'molt-verify-" in line, line
    assert "when unsubscribe returns, no deliver may follow" in line, line
    assert "ok    pubsub: ACK is not delivered again" in done.stdout, done.stdout


def test_a_file_that_is_not_a_plugin_fails_the_load_check(molt_bin, tmp_path):
    bogus = tmp_path / "not-a-plugin.so"
    bogus.write_text("just text\n")
    bogus.chmod(0o644)
    done = verify(molt_bin, bogus)
    assert done.returncode == 1, done
    assert "not a shared object" in failed_line(done, "load"), done.stdout
    assert done.stdout.splitlines()[-1].startswith("FAIL  "), done.stdout


def test_a_lock_another_owner_can_unlock_fails_the_owner_check(molt_bin, broken_lock):
    done = verify(molt_bin, broken_lock, "--metadata", "unlockAnyOwner=true")
    assert done.returncode == 1, done
    line = failed_line(done, "lock: unlock by another owner")
    assert "answered SUCCESS, want LOCK_BELONGS_TO_OTHERS" in line, line
    assert "lock: unlock by another owner" in done.stdout.splitlines()[-1], done.stdout  # named in the summary
    assert "ok    lock: another owner is refused" in done.stdout, done.stdout


def test_an_import_that_loses_the_exported_locks_fails_the_transfer_check(molt_bin, broken_lock):
    done = verify(molt_bin, broken_lock, "--metadata", "importMode=lose")
    assert done.returncode == 1, done
    line = failed_line(done, "state transfer: export, import into a new instance (format 1)")
    assert "was acquired by another owner: the lock was lost" in line, line
    assert "import_state accepted" in failed_line(done, "state transfer: a truncated export is refused")


def test_an_import_that_refuses_the_export_fails_the_transfer_check(molt_bin, broken_lock):
    done = verify(molt_bin, broken_lock, "--metadata", "importMode=refuse")
    assert done.returncode == 1, done
    line = failed_line(done, "state transfer: export, import into a new instance (format 1)")
    assert "import_state refused" in line and "broken-lock: import refused (importMode=refuse)" in line, line


def test_a_leak_per_init_fails_the_cycles_check(molt_bin, broken_lock):
    done = verify(molt_bin, broken_lock, "--metadata", "leakKiB=1024", "--cycles", "20", "--rss-limit-mib", "8")
    assert done.returncode == 1, done
    line = failed_line(done, "init/destroy x20")
    assert "RSS +" in line and "limit 8.0 MiB" in line, line


def test_a_call_never_completed_fails_its_check_and_stops_the_run(molt_bin, broken_lock):
    done = verify(molt_bin, broken_lock, "--metadata", "hangUnlock=true", "--timeout-ms", "300")
    assert done.returncode == 1, done
    line = failed_line(done, "lock: unlock by another owner")
    assert "did not complete within 0.3 seconds (done never called)" in line, line
    assert "not tried: the plugin never completed 1 earlier call" in failed_line(done, "lock: unlock of a missing lock")
    assert "skip  remaining checks: the plugin never completed a call" in done.stdout, done.stdout
    assert "init/destroy" not in done.stdout, done.stdout


def test_state_kept_in_the_instance_without_the_holds_state_flag_fails(molt_bin, fixtures_dir):
    # memstate is an in-memory store (an engine test fixture) that does not declare MOLT_PLUGIN_HOLDS_STATE.
    done = verify(molt_bin, fixtures_dir / "memstate-1.0.0.so", "--cycles", "1")
    assert done.returncode == 1, done
    line = failed_line(done, "holds state")
    assert "a key set in one instance is not seen by another instance" in line and "MOLT_PLUGIN_HOLDS_STATE" in line, line
    assert len(lines(done, "FAIL")) == 2, done.stdout  # that check, and the summary


@pytest.mark.parametrize("metadata, wanted", [
    ("initError=probe refuses this config", "FAIL  init: init failed (INVALID_ARGUMENT): probe refuses this config"),
    ("readiness=never", "FAIL  init: not READY after 0.3 seconds: probe: never ready"),
    ("readiness=failed", "FAIL  init: readiness FAILED: probe: readiness failed by config"),
])
def test_an_init_that_fails_or_never_gets_ready_stops_the_run(molt_bin, fixtures_dir, metadata, wanted):
    done = verify(molt_bin, fixtures_dir / "probe-1.0.0.so", "--metadata", metadata, "--timeout-ms", "300")
    assert done.returncode == 1, done
    assert wanted in done.stdout.splitlines(), done.stdout
    assert done.stdout.splitlines()[-1] == "FAIL  probe@1.0.0: 2 ok, 1 failed, 0 skipped (failed: init)", done.stdout


def test_a_missing_required_key_is_named(molt_bin, plugins_dir):
    done = verify(molt_bin, plugins_dir / "redis-state-1.0.0.so")
    assert done.returncode == 1, done
    line = failed_line(done, "config")
    assert "missing required config key 'redisHost'" in line and "--metadata redisHost=VALUE" in line, line


def test_an_unknown_key_is_refused_naming_the_known_ones(molt_bin, plugins_dir):
    done = verify(molt_bin, plugins_dir / "memorylock-2.0.0.so", "--metadata", "bogus=1")
    assert done.returncode == 1, done
    line = failed_line(done, "config")
    assert "config key 'bogus' is not a key of plugin memorylock@2.0.0 (known: " in line, line


def test_a_previous_version_of_another_kind_is_refused(molt_bin, plugins_dir):
    done = verify(molt_bin, plugins_dir / "in-memory-1.1.0.so", "--previous", plugins_dir / "memorylock-1.0.0.so",
                  "--cycles", "1")
    assert done.returncode == 1, done
    assert "is of kind lock, not state" in failed_line(done, "load previous"), done.stdout


@pytest.mark.parametrize("args", [["/nonexistent/plugin.so"], ["PLUGIN", "--metadata", "novalue"], ["PLUGIN", "--cycles", "0"]])
def test_usage_errors_exit_64(molt_bin, plugins_dir, args):
    args = [str(plugins_dir / "memorylock-2.0.0.so") if arg == "PLUGIN" else arg for arg in args]
    done = verify(molt_bin, *args)
    assert done.returncode == 64, done
    assert done.stdout == "", done.stdout
