"""The file agent: `molt serve --agents-file-directory DIR` applies the component files in DIR as they
appear, change (edited in place or replaced by an atomic rename) and disappear; an invalid file is
reported and changes nothing."""

import os

from conftest import DAPR_LOCK_YAML, wait_for


def test_file_agent_applies_edits_renames_and_deletes(molt, tmp_path):
    watched = tmp_path / "watched"
    watched.mkdir()
    sidecar = molt([], extra_args=["--agents-file-directory", str(watched)])
    component_file = watched / "filelock.yaml"

    # A new file: the component is added.
    component_file.write_text(DAPR_LOCK_YAML.format(name="filelock", max_locks=10, buckets=64))
    status = wait_for(lambda: sidecar.list_components().get(("lock", "filelock")), "the component to be added")
    assert status.generation == 1 and status.plugin.startswith("memorylock@")

    # Edited in place, a key that applies in place: same generation, new last result.
    component_file.write_text(DAPR_LOCK_YAML.format(name="filelock", max_locks=20, buckets=64))
    status = wait_for(lambda: (s := sidecar.component("lock", "filelock")).last_result.action == "applied-in-place" and s,
                      "the in-place apply")
    assert status.generation == 1

    # Replaced by an atomic rename, a key that needs a reload: a new generation.
    replacement = watched / ".filelock.yaml.tmp"
    replacement.write_text(DAPR_LOCK_YAML.format(name="filelock", max_locks=20, buckets=128))
    os.rename(replacement, component_file)
    status = wait_for(lambda: (s := sidecar.component("lock", "filelock")).generation == 2 and s, "the reload")
    assert status.last_result.action == "reloaded"

    # An invalid file: reported, nothing changes, molt keeps serving.
    component_file.write_text("apiVersion: dapr.io/v1alpha1\nkind: Component\nspec: [unclosed\n")
    wait_for(lambda: "component file not applied" in sidecar.stderr(), "the invalid file to be reported")
    assert sidecar.component("lock", "filelock").generation == 2
    assert sidecar.http("GET", "/v1.0/healthz").status == 204
    # A valid but refused configuration (the plugin's own check): reported, nothing changes.
    component_file.write_text(DAPR_LOCK_YAML.format(name="filelock", max_locks="lots", buckets=128))
    wait_for(lambda: 'invalid value \\"lots\\"' in sidecar.stderr() or 'invalid value "lots"' in sidecar.stderr(),
             "the plugin's refusal to be reported")
    assert sidecar.component("lock", "filelock").generation == 2

    # Deleted: the component is removed.
    component_file.unlink()
    wait_for(lambda: ("lock", "filelock") not in sidecar.list_components(), "the component to be removed")
