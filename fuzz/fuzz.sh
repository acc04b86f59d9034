#!/bin/sh
# Runs cargo-fuzz on stable Rust: RUSTC_BOOTSTRAP unlocks the -Z sanitizer
# flags cargo-fuzz passes, and tools/cargo adds --ignore-rust-version.
#   fuzz/fuzz.sh run command -- -max_total_time=300
#   fuzz/fuzz.sh build
# Each target starts from the committed seeds in fuzz/seeds/<target>/ and
# keeps what it learns in fuzz/corpus/<target>/ (not committed).
set -eu
cd "$(dirname "$0")"
export PATH="$(pwd)/tools:$PATH"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-/var/tmp/spamgate-fuzz-target}"
if [ "${1:-}" = run ] && [ -n "${2:-}" ]; then
    target=$2
    shift 2
    mkdir -p "corpus/$target"
    exec cargo fuzz run --target-dir "$CARGO_TARGET_DIR" "$target" "corpus/$target" "seeds/$target" "$@"
fi
exec cargo fuzz "$@" --target-dir "$CARGO_TARGET_DIR"
