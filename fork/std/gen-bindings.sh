#!/usr/bin/env bash
# Regenerates the two wit-bindgen outputs that patches 0002 and 0003 commit into
# std (run by a maintainer when wit/ changes; build.sh does not need it):
#
#   std/src/sys/pal/wasi/exit/bindings.rs      from wit/exit/exit.wit  (world std-exit)
#   std/src/sys/process/wasip2/bindings.rs     from wit/process.wit    (world guest)
#
# Usage: gen-bindings.sh LIBRARY_DIR   (a library/ tree, e.g. dev/library)
# Needs wit-bindgen-cli 0.45.1 (the wit-bindgen of std's `wasi` 0.14.4 dependency):
#   cargo install --locked wit-bindgen-cli --version 0.45.1
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
lib="$1"
wit_bindgen="${WIT_BINDGEN:-wit-bindgen}"
"$wit_bindgen" --version | grep -q '^wit-bindgen-cli 0\.45\.1' ||
    { echo "need wit-bindgen-cli 0.45.1" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# The same post-processing as the `wasi` crate's ci/regenerate.sh does for std:
# a custom-section name of its own ("-in-libstd" suffix), and no `wit_bindgen`
# crate at run time: std defines `cabi_realloc` itself (sys/pal/wasi/cabi_realloc.rs),
# so `maybe_link_cabi_realloc` (a no-op on wasip2 anyway) goes, the one other
# runtime item (`Cleanup`) comes from `--runtime-path`, and `std::error` is
# `crate::error` inside std.
gen() {
    local wit="$1" world="$2" out="$3"; shift 3
    "$wit_bindgen" rust "$wit" --world "$world" --out-dir "$tmp" --format \
        --type-section-suffix build-sandbox-in-libstd "$@" >/dev/null
    sed -e 's/^\(\s*\)[a-z0-9_:]*::maybe_link_cabi_realloc();/\1\/\/ std defines `cabi_realloc` itself: nothing to link here./' \
        -e 's/impl std::error::Error for/impl crate::error::Error for/' \
        "$tmp/${world//-/_}.rs" > "$out"
    if grep -v '^\s*//' "$out" | grep -n 'wit_bindgen::rt\|[^:]std::\|maybe_link'; then
        echo "$out: unexpected runtime reference left" >&2; exit 1
    fi
}

mkdir -p "$lib/std/src/sys/pal/wasi/exit" "$lib/std/src/sys/process/wasip2"
gen "$here/wit/exit" std-exit "$lib/std/src/sys/pal/wasi/exit/bindings.rs"
gen "$here/wit/process.wit" guest "$lib/std/src/sys/process/wasip2/bindings.rs" \
    --runtime-path crate::sys::process::wasip2::rt
echo "generated into $lib"
