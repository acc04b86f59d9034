#!/usr/bin/env bash
# Relay benchmark: Postfix's smtp-source sends to smtp-sink directly, then
# through spamgate (release build, no checks, XCLIENT off), for each message
# size and number of parallel sessions; prints msgs/s for both, their ratio,
# spamgate's peak RSS (VmHWM, one fresh spamgate per measurement) and the
# CPU time spamgate spent per message (steady whatever else the machine runs).
#
#   bench/relay.sh                 # 20,000 messages per measurement
#   QUICK=1 bench/relay.sh         # 1,000 messages: a smoke run
#   MESSAGES=5000 SIZES="4096" SESSIONS="100" bench/relay.sh
#   RECONNECT=1 bench/relay.sh     # one message per connection (no smtp-source -d)
#   GATES="before=/tmp/sg.old after=/tmp/sg.new" bench/relay.sh
#                                  # A/B: each binary measured right after direct,
#                                  # back to back (no cargo build)
#   NULL_PROXY=1 bench/relay.sh    # also a byte-copying TCP forwarder
#                                  # (examples/null_proxy.rs): the floor for any proxy
#
# Besides msgs/s, each row gives the CPU time per message of the gate (user
# and system) and of smtp-source + smtp-sink together, so the whole CPU
# budget of the two cores can be read off: a proxy can only reach the
# direct rate when the load generator and the sink leave it a core's room.
#
# Needs the Debian package postfix (smtp-source, smtp-sink) and cargo.
set -euo pipefail
shopt -s inherit_errexit

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/spamgate-target}"

if [[ "${QUICK:-0}" == 1 ]]; then
    MESSAGES="${MESSAGES:-1000}"
else
    MESSAGES="${MESSAGES:-20000}"
fi
SIZES="${SIZES:-4096 102400}"
SESSIONS="${SESSIONS:-1 10 100}"
# smtp-source -d keeps each session open for its next message, as a busy
# relay does; RECONNECT=1 opens one connection per message instead.
REUSE=(-d)
[[ "${RECONNECT:-0}" == 1 ]] && REUSE=()

SINK=/usr/sbin/smtp-sink
SOURCE=/usr/sbin/smtp-source
for tool in "$SINK" "$SOURCE"; do
    [[ -x "$tool" ]] || { echo "missing $tool: apt-get install postfix" >&2; exit 1; }
done

WORK="$(mktemp -d /tmp/spamgate-bench.XXXXXX)"
# shellcheck source=bench/lib.sh
source bench/lib.sh

# Starts spamgate relaying to the sink; sets GATE_PID, GATE_PORT.
start_spamgate() {
    GATE_PORT=$(free_port)
    cat >"$WORK/spamgate.yaml" <<EOF
hostname: spamgate.bench
listen: ["127.0.0.1:$GATE_PORT"]
upstream:
  address: "127.0.0.1:$SINK_PORT"
  xclient: false
# smtp-sink accepts every recipient: without this the relay probe refuses to start.
relay_domains: [sink.example]
metrics:
  listen: "127.0.0.1:$(free_port)"
limits:
  max_message_size: 10485760
  max_connections: 2000
  max_connections_per_ip: 2000
log:
  level: info
auth:
  spf: {mode: "off"}
  dkim: {mode: "off"}
  arc: {mode: "off"}
  dmarc: {mode: "off"}
  from_header: "off"
EOF
    if [[ "$GATE_KIND" == null ]]; then
        "$SPAMGATE" "127.0.0.1:$GATE_PORT" "127.0.0.1:$SINK_PORT" >"$WORK/spamgate.log" 2>&1 &
    else
        "$SPAMGATE" check --config "$WORK/spamgate.yaml" >/dev/null
        "$SPAMGATE" run --config "$WORK/spamgate.yaml" >"$WORK/spamgate.log" 2>&1 &
    fi
    GATE_PID=$!
    PIDS+=("$GATE_PID")
    wait_port "$GATE_PORT" "$GATE_PID"
}

# Sends MESSAGES messages of $2 bytes in $3 sessions to port $1; sets RATE
# (msgs/s) and LOAD_CPU (smtp-source's user+system µs per message).
measure() {
    local port=$1 size=$2 sessions=$3 start end
    start=$(date +%s.%N)
    /usr/bin/time -f '%U %S' -o "$WORK/source.time" \
        "$SOURCE" "${REUSE[@]}" -s "$sessions" -m "$MESSAGES" -l "$size" \
        -f bench@source.example -t sink@sink.example -M source.example "127.0.0.1:$port" \
        >"$WORK/source.out" 2>&1 || { cat "$WORK/source.out" >&2; return 1; }
    end=$(date +%s.%N)
    RATE=$(awk -v n="$MESSAGES" -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", n / (b - a) }')
    LOAD_CPU=$(awk -v n="$MESSAGES" '{ printf "%.0f", ($1 + $2) * 1000000 / n }' "$WORK/source.time")
}

# User and system CPU µs per message of process $1 so far, as "USER SYS".
cpu_split() {
    awk -v hz="$(getconf CLK_TCK)" -v n="$MESSAGES" \
        '{ printf "%.0f %.0f\n", $14 * 1000000 / hz / n, $15 * 1000000 / hz / n }' "/proc/$1/stat"
}



# Sets RATE and PAIR_CPU (smtp-source + smtp-sink CPU µs per message).
direct_rate() {
    start_sink -C
    measure "$SINK_PORT" "$1" "$2"
    check_delivered "$MESSAGES"
    pair_cpu
    stop "$SINK_PID"
}

pair_cpu() {
    local user sys
    read -r user sys < <(cpu_split "$SINK_PID")
    PAIR_CPU=$((LOAD_CPU + user + sys))
}

# Sets RATE, RSS (spamgate's peak resident set, kB) and CPU (spamgate's
# user+system CPU time per message, µs: unlike msgs/s, it does not depend
# on what else the machine runs).
spamgate_rate() {
    start_sink -C
    start_spamgate
    measure "$GATE_PORT" "$1" "$2"
    check_delivered "$MESSAGES"
    RSS=$(awk '/^VmHWM:/ { print $2 }' "/proc/$GATE_PID/status")
    # Fields 14 and 15 of /proc/PID/stat: user and system time, in ticks.
    read -r CPU_USER CPU_SYS < <(cpu_split "$GATE_PID")
    CPU=$((CPU_USER + CPU_SYS))
    pair_cpu
    stop "$GATE_PID"
    stop "$SINK_PID"
}

if [[ -z "${GATES:-}" ]]; then
    log "building spamgate (release) into $CARGO_TARGET_DIR"
    cargo build --release --ignore-rust-version --bin spamgate >&2
    GATES="spamgate=$CARGO_TARGET_DIR/release/spamgate"
fi
if [[ "${NULL_PROXY:-0}" == 1 ]]; then
    cargo build --release --ignore-rust-version --example null_proxy >&2
    GATES="$GATES null=$CARGO_TARGET_DIR/release/examples/null_proxy"
fi
for gate in $GATES; do
    [[ -x "${gate#*=}" ]] || { echo "not an executable: ${gate#*=}" >&2; exit 1; }
done

log "$(nproc) CPUs, $(uname -sr), spamgate $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
if [[ ${#REUSE[@]} -gt 0 ]]; then how="sessions reused (smtp-source -d)"; else how="one connection per message"; fi
log "$MESSAGES messages per measurement, $how"

FORMAT='%-6s %8s %-9s %9s %9s %7s %6s %14s %18s %8s'
ROWS=()
for size in $SIZES; do
    for sessions in $SESSIONS; do
        for gate in $GATES; do
            log "size $size B, $sessions sessions: direct"
            direct_rate "$size" "$sessions"
            direct=$RATE direct_pair=$PAIR_CPU
            log "size $size B, $sessions sessions: through ${gate%%=*}"
            SPAMGATE="${gate#*=}" GATE_KIND=spamgate
            [[ "${gate%%=*}" == null* ]] && GATE_KIND=null
            spamgate_rate "$size" "$sessions"
            ratio=$(awk -v a="$RATE" -v b="$direct" 'BEGIN { printf "%.1f%%", 100 * a / b }')
            load=$(cut -d' ' -f1 /proc/loadavg)
            # shellcheck disable=SC2059 # FORMAT is ours
            ROWS+=("$(printf "$FORMAT" "$((size / 1024)) KB" "$sessions" "${gate%%=*}" \
                "$direct" "$RATE" "$ratio" "$((RSS / 1024))M" "$CPU ($CPU_USER+$CPU_SYS)" \
                "$direct_pair -> $PAIR_CPU" "$load")")
            log "${ROWS[-1]}"
        done
    done
done

echo
# shellcheck disable=SC2059
printf "$FORMAT\n" size sessions gate "direct/s" "gate/s" ratio RSS "gate CPU µs/msg" \
    "source+sink µs/msg" "load 1m"
echo "(gate CPU: user+system; source+sink: direct -> through the gate)"
printf '%s\n' "${ROWS[@]}"
