#!/usr/bin/env bash
# Flood bench: 10,000 idle sessions, 1,000 slowloris clients, oversized
# lines and messages, NUL / invalid UTF-8 floods against a release build of
# spamgate. Prints RSS per idle session, peak RSS (VmHWM) and a probe
# message's latency during each phase. Exit status 0 when spamgate stayed up
# and served the probe every time.
#
#   bench/flood.sh                       # the full run (about 3 minutes)
#   IDLE=2000 SLOWLORIS=200 bench/flood.sh   # a quick one
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/spamgate-target}"
IDLE="${IDLE:-10000}"
SLOWLORIS="${SLOWLORIS:-1000}"
INTERVAL_MS="${INTERVAL_MS:-3000}"
IDLE_TIMEOUT="${IDLE_TIMEOUT:-30}"

# Each side holds one socket per session, plus slack.
want=$((IDLE + 2000))
ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt "$want" ]; then
    echo "flood: file limit $(ulimit -n) is below $want; lower IDLE or raise the hard limit" >&2
    exit 2
fi

cargo build --release --ignore-rust-version --bin spamgate --example flood
"$CARGO_TARGET_DIR/release/examples/flood" \
    --spamgate "$CARGO_TARGET_DIR/release/spamgate" \
    --idle "$IDLE" --slowloris "$SLOWLORIS" \
    --interval-ms "$INTERVAL_MS" --idle-timeout "$IDLE_TIMEOUT"
