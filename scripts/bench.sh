#!/usr/bin/env bash
# make bench: builds molt-bench in release (scratch path .build-release, ignored by git), builds the
# plugins and fixtures (make build) and the direct-call baseline (make bench-direct), runs every
# benchmark and every load scenario, writes build/bench/results.json (+ results.md) and
# build/bench/scenarios/, and regenerates the generated sections of BENCHMARKS.md (with the plots).
#
#   BENCH_QUICK=1 make bench   small counts, to check the pipeline (numbers not meaningful)
#
# Per-benchmark stdout (one JSON line) and stderr (progress) are kept in build/bench/<name>.json/.log.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SWIFT=${SWIFT:-swift}
OUT="$ROOT/build/bench"
SCRATCH="$ROOT/.build-release"
mkdir -p "$OUT"

# Release builds go through scripts/release-build.sh: full Foundation's autolink entries dropped (a Foundation
# symbol used by mistake is an undefined reference at link time, not a silent 8 MiB), one section per function,
# lld with RELR relocations and molt's start-up and serving code first (scripts/link-order).
echo "== release build of molt-bench and the Swift plugins ($SCRATCH)" >&2
SWIFT="$SWIFT" scripts/release-build.sh "$SCRATCH" >&2
BIN=$(SWIFT="$SWIFT" scripts/release-build.sh "$SCRATCH" --show-bin-path)

echo "== plugins and fixtures (make build), direct-call baseline (make bench-direct)" >&2
make --no-print-directory build >&2
make --no-print-directory bench-direct >&2

# make build stages the *debug* Swift fixtures; the bench measures release builds of them instead,
# staged here under the same file names (the C plugins are built by cc -O2 either way).
SWIFT_PLUGINS="$OUT/swift-plugins"
mkdir -p "$SWIFT_PLUGINS"
swift_note="Swift plugins measured: release builds ($SWIFT_PLUGINS, from $SCRATCH)"
for pair in SwiftTestLockV1:swift-testlock-1.0.0.so SwiftTestLockV2:swift-testlock-2.0.0.so MinimalSwiftLock:minimal-swift-lock.so RedisState:redis-state-1.0.0.so; do
    product=${pair%%:*}
    name=${pair#*:}
    if [ -f "$BIN/lib$product.so" ]; then
        install -m 0755 "$BIN/lib$product.so" "$SWIFT_PLUGINS/$name"
    else
        rm -f "$SWIFT_PLUGINS/$name"
        swift_note="Swift plugins measured: some are the DEBUG fixtures from make build (no release $product)"
    fi
done
echo "== $swift_note" >&2

quick=${BENCH_QUICK:-}
declare -a benches=(
    "load${quick:+ --iterations 20 --warmup 2}"
    "abi-op${quick:+ --pairs 100000 --async-pairs 10000 --rounds 2}"
    "load-rss${quick:+ --cycles 100 --warmup 10}"
    "apply${quick:+ --reloads 20 --swaps 20 --stateful-applies 3 --warmup 2}"
    "lease${quick:+ --pairs 10000 --leases 100000 --rounds 2}"
    "operation-dispatch${quick:+ --calls 100000 --invoke-calls 10000 --rounds 2}"
    "throughput${quick:+ --seconds 1}"
    "swap-rss --count 1000 --max-growth-kib 2048"
    "redis${quick:+ --calls 200}"
)

declare -a files=() failed=()
for bench in "${benches[@]}"; do
    name=${bench%% *}
    echo "== molt-bench $bench" >&2
    # shellcheck disable=SC2086  # the options are meant to split
    if "$BIN/molt-bench" $bench --swift-plugins-dir "$SWIFT_PLUGINS" >"$OUT/$name.json" 2> >(tee "$OUT/$name.log" >&2); then
        :
    else
        status=$?
        failed+=("--failed=$name:$status")
        echo "== molt-bench $name exited $status" >&2
    fi
    files+=("$OUT/$name.json")
done
wait  # the tee processes

"$BIN/molt-bench" report --output "$OUT/results.json" \
    --swift-version "$("$SWIFT" --version 2>&1 | head -n 1)" \
    --note "$swift_note" \
    --note "Source: $(git describe --always --dirty 2>/dev/null || echo 'not a git checkout')" \
    --note "Command: make bench (scripts/bench.sh)${quick:+ with BENCH_QUICK=1: small counts, numbers not meaningful}" \
    ${failed[@]+"${failed[@]}"} "${files[@]}" | tee "$OUT/results.md"

make --no-print-directory python-env >&2

# Configuration agents: etcd put -> applied on three sidecars, file change -> applied, restart with 100
# persisted components -> ready (real etcd and molt processes; needs /usr/bin/etcd).
echo "== config agents (Benchmarks/config-agents)" >&2
build/venv/bin/python Benchmarks/config-agents/config_agents_bench.py --molt "$BIN/molt" --plugins-dir "$ROOT/plugins.d" \
    --output "$OUT/config-agents.json" ${quick:+--puts 20 --file-rewrites 10 --restarts 2} \
    || failed+=("--failed=config-agents:$?")

# RSS over 20 000 applies through the Control API (reloads of memorylock), flat within 2 MiB after a warm-up.
echo "== RSS over applies (Benchmarks/apply-rss)" >&2
build/venv/bin/python Benchmarks/apply-rss/apply_rss.py --molt "$BIN/molt" --plugins-dir "$ROOT/plugins.d" \
    --applies "$([ -n "$quick" ] && echo 2000 || echo 20000)" --every 2000 --json "$OUT/apply-rss.json" < /dev/null >&2 \
    || failed+=("--failed=apply-rss:$?")

# Issue 15's serving-path comparison: molt's gRPC and HTTP app APIs under h2load and wrk (C clients) beside the
# floors of this machine (nginx h2c and HTTP/1.1 return 200, redis-benchmark HGET and XADD: molt's PublishEvent and
# HTTP publish on redis-streams beside XADD of the same entry), with latency, calls/s, context switches and CPU per call; installs nginx, nghttp2-client and wrk through scripts/install-deps.sh --bench, runs its own
# nginx and redis-server on loopback and stops them.
echo "== serving path against C-client floors (Benchmarks/serving-floor)" >&2
build/venv/bin/python Benchmarks/serving-floor/serving_floor.py --molt "$BIN/molt" --plugins-dir "$ROOT/plugins.d" \
    ${quick:+--seconds 1} --json "$OUT/serving-floor.json" --markdown "$OUT/serving-floor.md" < /dev/null \
    || failed+=("--failed=serving-floor:$?")

# Reload under load, faults and baselines: every scenario of Benchmarks/scenarios against real molt, redis-server
# and etcd processes with molt-bench loadgen (the pub/sub ones with pubsub_load.py: publish + streaming subscriber;
# a lost message or failed publish fails the run); a report, CSV and plot each in build/bench/scenarios/<name>/.
echo "== scenarios (Benchmarks/scenarios)" >&2
bash scripts/python-env.sh build/bench-venv Benchmarks/scenarios/requirements.txt >&2
build/bench-venv/bin/python Benchmarks/scenarios/scenarios.py run all --bin "$BIN" ${quick:+--quick --no-report} \
    || failed+=("--failed=scenarios:$?")

# A full run regenerates BENCHMARKS.md: the molt-bench table here, the scenarios section (and the plots in
# docs/benchmarks/) by scenarios.py above. A quick run leaves BENCHMARKS.md alone.
if [ -z "$quick" ]; then
    python3 scripts/replace-section.py BENCHMARKS.md molt-bench "$OUT/results.md" || failed+=("--failed=BENCHMARKS.md:$?")
fi

echo >&2
echo "results: $OUT/results.json, $OUT/results.md, $OUT/config-agents.json, $OUT/serving-floor.json, $OUT/scenarios/" >&2
[ ${#failed[@]} -eq 0 ]
