#!/usr/bin/env bash
# PluginKit builds on its own: copies PluginKit/ and the sample plugin package
# (docs/examples/swift-package) into a temporary directory outside the repository, runs PluginKit's
# tests there, builds the sample, and checks what a plugin author gets: both versions' .so files with
# exactly the molt_ exports of their capabilities, no Foundation, no package resolved but PluginKit,
# no compiler warnings, and (with MOLT_BIN) the versions molt reads from them and `molt plugin verify`.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
swift=${SWIFT:-swift}
work=$(mktemp -d "${TMPDIR:-/tmp}/molt-pluginkit.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

copy() {  # copy SOURCE DEST: the sources only, never build products or resolution state
    mkdir -p "$2"
    tar -C "$1" --exclude=.build --exclude=.swiftpm --exclude=Package.resolved -cf - . | tar -C "$2" -xf -
}
copy "$root/PluginKit" "$work/PluginKit"
copy "$root/docs/examples/swift-package" "$work/example"

# Builds in `dir`, printing the log; fails on compiler warnings (a plugin build should show none).
build() {
    local dir=$1; shift
    local log="$work/build.log"
    if ! (cd "$dir" && "$swift" build "$@") 2>&1 | tee "$log"; then fail "swift build $* in $dir"; fi
    ! grep -E 'warning:' "$log" || fail "warnings in the build of $dir"
}

echo "== PluginKit alone: build and test in $work/PluginKit"
start=$(date +%s)
build "$work/PluginKit" --build-tests
(cd "$work/PluginKit" && "$swift" test --skip-build) || fail "PluginKit's tests"

echo "== the sample plugin package against that copy"
MOLT_PLUGINKIT_PATH="$work/PluginKit" build "$work/example"
cd "$work/example"

# Nothing resolved but PluginKit: no checkouts, no pins, one dependency in the workspace.
[ -z "$(ls -A .build/checkouts 2>/dev/null)" ] || fail "packages were checked out: $(ls .build/checkouts)"
[ ! -f Package.resolved ] || ! grep -q '"identity"' Package.resolved || fail "Package.resolved pins packages: $(cat Package.resolved)"
deps=$(python3 -c 'import json,sys; print(" ".join(sorted(d["packageRef"]["identity"] for d in json.load(open(sys.argv[1]))["object"]["dependencies"])))' .build/workspace-state.json)
[ "$deps" = "pluginkit" ] || fail "resolved packages: '$deps' (expected pluginkit only)"

bin=$(MOLT_PLUGINKIT_PATH="$work/PluginKit" "$swift" build --show-bin-path)
expected="molt_abi_version molt_lock_try_lock molt_lock_unlock molt_plugin_config_keys molt_plugin_destroy \
molt_plugin_export_state molt_plugin_import_state molt_plugin_info molt_plugin_init molt_plugin_readiness molt_pluginkit_component"
mkdir -m 0700 "$work/plugins"
for v in 1 2; do
    so="$bin/libExampleLockV$v.so"
    [ -f "$so" ] || fail "$so was not built"
    exports=$(nm -D --defined-only "$so" | awk '$3 ~ /^molt_/ {print $3}' | sort | xargs)
    [ "$exports" = "$expected" ] || fail "$so exports '$exports', expected '$expected'"
    ! ldd "$so" | grep -q Foundation || fail "$so links Foundation"
    staged="$work/plugins/example-swift-lock-$v.0.0.so"
    install -m 0644 "$so" "$staged"
    if [ -n "${MOLT_BIN:-}" ]; then
        info=$("$MOLT_BIN" plugin inspect "$staged")
        echo "$info" | grep -qE "^version: +$v\.0\.0$" || fail "molt plugin inspect $staged: $info"
        echo "$info" | grep -qE "^state: +1\.\.\.1" || fail "molt plugin inspect $staged shows no state formats 1...1: $info"
    fi
    echo "ok: $(basename "$staged"): $exports"
done
if [ -n "${MOLT_BIN:-}" ]; then  # the plugin contract, both versions, state handed over both ways
    "$MOLT_BIN" plugin verify "$work/plugins/example-swift-lock-2.0.0.so" --previous "$work/plugins/example-swift-lock-1.0.0.so" \
        || fail "molt plugin verify of the sample's two versions"
fi
echo "== PluginKit builds on its own; the sample's two versions are plugins ($(( $(date +%s) - start )) s)"
