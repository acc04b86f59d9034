#!/usr/bin/env bash
# Classifier benchmark (release build of examples/bayes_bench.rs): trains on
# spam-1 + easy-ham-1 of the SpamAssassin public corpus and tests on spam-2 +
# easy-ham-2 + hard-ham-1 (the classifier alone, at the default bands), then
# prints classify CPU time per 4 KB message, the time to learn 10,000
# messages, and the file size and resident memory of a database of one
# million tokens (built, saved, then loaded in a fresh process).
#
#   bench/bayes.sh                              # corpus at /var/tmp/corpus/package/data
#   CORPUS=/path/to/data bench/bayes.sh         # another copy (groups as subdirectories)
set -euo pipefail
shopt -s inherit_errexit

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/spamgate-target}"
CORPUS="${CORPUS:-/var/tmp/corpus/package/data}"
cargo build --ignore-rust-version --release --example bayes_bench
BIN="$CARGO_TARGET_DIR/release/examples/bayes_bench"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

"$BIN" corpus "$CORPUS"
"$BIN" million "$WORK"
"$BIN" load "$WORK"
