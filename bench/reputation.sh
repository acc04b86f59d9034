#!/usr/bin/env bash
# Reputation benchmark: cost per connection of the DNSBL stage with a warm
# cache, and of a rate-limit check with 1 million keys (time and memory),
# in memory and, when redis-server is installed, through Redis.
#
#   bench/reputation.sh               # 1,000,000 keys
#   KEYS=100000 bench/reputation.sh   # a smaller run
#
# Needs cargo; redis-server (Debian package) for the Redis figure.
set -euo pipefail
shopt -s inherit_errexit

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/spamgate-target}"
KEYS="${KEYS:-1000000}"

cargo build --release --ignore-rust-version --example reputation_bench
BENCH="$CARGO_TARGET_DIR/release/examples/reputation_bench"

WORK="$(mktemp -d /tmp/spamgate-bench.XXXXXX)"
REDIS_PID=""
cleanup() {
    if [[ -n "$REDIS_PID" ]]; then
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

ARGS=(--keys "$KEYS")
if command -v redis-server >/dev/null; then
    PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >/dev/null &
    REDIS_PID=$!
    for _ in $(seq 100); do
        if redis-cli -p "$PORT" ping 2>/dev/null | grep -q PONG; then break; fi
        sleep 0.05
    done
    ARGS+=(--redis "redis://127.0.0.1:$PORT/")
else
    echo "redis-server not installed: skipping the Redis figure" >&2
fi

"$BENCH" "${ARGS[@]}"
