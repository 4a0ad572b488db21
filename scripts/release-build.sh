#!/usr/bin/env bash
# Release build of the package with molt's release flags:
#   scripts/release-build.sh SCRATCH_PATH [more swift build arguments, e.g. --show-bin-path]
#
# - scripts/release-swift-flags.txt: full Foundation's autolink entries dropped (molt uses FoundationEssentials only;
#   SwiftProtobuf and the modules importing it would map libFoundation and ICU, ~8 MiB resident), and every function
#   in a section of its own (Swift, C) so that the linker can drop and place them one by one;
# - linked by lld with RELR relocations (-z pack-relative-relocs: the relative relocations molt's start-up reads
#   shrink from 1.7 MiB to 0.1 MiB) and the start-up and serving functions first (scripts/link-order: the kernel
#   maps code in 64 KiB blocks around each fault, so scattered functions keep most of the 17 MiB of code resident).
# SwiftPM relinks when the flags change, not when the order file's content does: after regenerating it, delete the
# binary (SCRATCH/<triple>/release/molt) to relink.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=${1:?usage: scripts/release-build.sh SCRATCH_PATH [swift build arguments]}
shift
read -r -a compile_flags < scripts/release-swift-flags.txt
mkdir -p "$scratch"
order="$(cd "$scratch" && pwd)/molt.order"
link_flags=(-Xswiftc -use-ld=lld -Xlinker -z -Xlinker pack-relative-relocs
            -Xlinker "--symbol-ordering-file=$order" -Xlinker --no-warn-symbol-ordering)
# SwiftPM does not recompile Swift modules when only -Xfrontend flags change: a scratch path built with other
# flags (or before this script) is cleaned first, so that every object has its own function sections.
stamp="$scratch/release-build.flags"
if [ "$(cat "$stamp" 2>/dev/null)" != "${compile_flags[*]} ${link_flags[*]}" ]; then
    echo "== release flags changed: clean build in $scratch" >&2
    "${SWIFT:-swift}" package clean --scratch-path "$scratch" >&2
    echo "${compile_flags[*]} ${link_flags[*]}" > "$stamp"
fi
gunzip -c scripts/link-order/molt.order.gz > "$order.new"
if cmp -s "$order.new" "$order"; then rm "$order.new"; else mv "$order.new" "$order"; fi
exec "${SWIFT:-swift}" build -c release --scratch-path "$scratch" "${compile_flags[@]}" "${link_flags[@]}" "$@"
