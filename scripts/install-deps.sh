#!/usr/bin/env bash
# Installs what molt needs to build and test on a fresh Debian machine that has the Swift toolchain.
# Idempotent: installs only missing packages. Used by `make run`, `make test` and .ci/run; with --bench,
# also what the benchmarks need (scripts/bench.sh, Benchmarks/serving-floor).
set -euo pipefail

# Debian packages the build and the tests need (C compiler for C plugins, make; libffi for the host's calls of
# declared operations; hiredis and redis-server for the RedisState plugin and its tests; jansson for the LocalFileSecrets
# plugin's JSON; libcurl for the EtcdConfiguration plugin's HTTP to etcd's JSON gateway; etcd-server for the etcd agent tests
# and the EtcdConfiguration plugin's test; python3-venv and curl for the API tests).
packages=(gcc make libffi-dev libyaml-dev libhiredis-dev libjansson-dev libcurl4-openssl-dev redis-server etcd-server python3-venv curl)
# --bench: nginx, nghttp2-client (h2load) and wrk for Benchmarks/serving-floor, which runs its own nginx as the
# current user and never the system service (kept out of `make test`: the package starts that service).
[ "${1:-}" = "--bench" ] && packages+=(nginx nghttp2-client wrk)

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi
command -v swift >/dev/null || { echo "error: the Swift toolchain is not on PATH (see https://swift.org/install)" >&2; exit 1; }
