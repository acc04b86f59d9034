# Shared by the bench scripts (sourced, not run): the processes a benchmark
# starts are listed in PIDS and stopped on exit, with WORK removed unless
# KEEP=1; ports are picked free on loopback and waited for.

PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    [[ "${KEEP:-0}" == 1 ]] || rm -rf "${WORK:-/nonexistent}"
}
trap cleanup EXIT

log() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# A port nothing listens on (a connection attempt is refused).
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
}

# Waits up to 30 s for `port` to listen while process `pid` lives.
wait_port() {
    local port=$1 pid=$2 tries=0
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || die "process $pid died before listening on $port"
        tries=$((tries + 1))
        ((tries < 1500)) || die "nothing listens on $port after 30 s"
        sleep 0.02
    done
}

# Stops one process and forgets it.
stop() {
    local pid=$1 keep=() p
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [[ "$p" == "$pid" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}
