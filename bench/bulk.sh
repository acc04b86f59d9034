#!/usr/bin/env bash
# Bulk detection figures: campaign clusters on SpamAssassin spam-2 against
# false clusters on easy-ham-2, CPU per ~4 KB message for fingerprint +
# count in memory, and memory per 100,000 band-key entries (one core).
# CORPUS names the corpus's data directory (default /var/tmp/corpus/package/data).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --ignore-rust-version --example bulk_bench
bin="${CARGO_TARGET_DIR:-target}/release/examples/bulk_bench"
if command -v taskset >/dev/null; then
    exec taskset -c 0 "$bin"
fi
exec "$bin"
