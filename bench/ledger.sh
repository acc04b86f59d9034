#!/usr/bin/env bash
# Zero-loss ledger: 50,000 uniquely numbered messages over 100 sessions
# through a release build of spamgate to an upstream that drops the
# connection at a random step (probability DROP at each step, the moment
# after the final dot included). Prints both ledgers compared; exit status
# 0 only when every message the client saw accepted is upstream exactly
# once and every other one got a 4xx/5xx.
#
#   bench/ledger.sh
#   MESSAGES=5000 SESSIONS=20 DROP=0.05 bench/ledger.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/spamgate-target}"
ulimit -n "$(ulimit -Hn)"
cargo build --release --ignore-rust-version --bin spamgate --example ledger
"$CARGO_TARGET_DIR/release/examples/ledger" \
    --spamgate "$CARGO_TARGET_DIR/release/spamgate" \
    --messages "${MESSAGES:-50000}" --sessions "${SESSIONS:-100}" --drop "${DROP:-0.01}"
