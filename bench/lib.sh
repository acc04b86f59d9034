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

# Waits up to 30 s for `port` to listen while process `pid` lives; `log`,
# when given, is the process's output, shown if it dies.
wait_port() {
    local port=$1 pid=$2 log=${3:-} tries=0
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null ||
            die "process $pid died before listening on $port${log:+: $(tail -5 "$log" 2>/dev/null)}"
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

# Starts Postfix's smtp-sink on a free port, counting messages (-c) into
# $WORK/sink.out; extra smtp-sink flags come as arguments (-C: no XCLIENT).
# SINK_NAME is its greeting name. Sets SINK_PID and SINK_PORT.
start_sink() {
    local user=()
    [[ "$(id -u)" == 0 ]] && user=(-u root)
    SINK_PORT=$(free_port)
    /usr/sbin/smtp-sink "${user[@]}" -c "$@" -h "${SINK_NAME:-sink.bench}" "127.0.0.1:$SINK_PORT" 1024 \
        >"$WORK/sink.out" 2>&1 &
    SINK_PID=$!
    PIDS+=("$SINK_PID")
    wait_port "$SINK_PORT" "$SINK_PID"
}

# Messages smtp-sink counted (its -c counters, last update).
sink_messages() {
    tr '\r' '\n' <"$WORK/sink.out" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1
}

# Fails unless the sink counted exactly $1 messages: none lost, none
# doubled (a proxy acknowledges only after the upstream did, so the count
# is there at once; the short wait covers the sink's counter update).
check_delivered() {
    local want=$1 tries=0 got
    while got=$(sink_messages); [[ "${got:-0}" -lt "$want" ]] && ((tries < 250)); do
        tries=$((tries + 1))
        sleep 0.02
    done
    [[ "${got:-0}" == "$want" ]] || die "smtp-sink counted ${got:-0} messages, expected $want"
}
