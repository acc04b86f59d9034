#!/usr/bin/env bash
# Authentication benchmark: the relay benchmark's measurement with SPF,
# DKIM and DMARC on. Postfix's smtp-source sends one DKIM-signed (dkimpy,
# RSA 2048) message of about SIZE bytes from an SPF-authorized, DMARC
# p=reject domain, first straight to smtp-sink, then through spamgate
# (release build) whose resolver asks a knotd on loopback. Prints msgs/s
# for both, their ratio, and spamgate's CPU time per message. In the same
# run, a byte-copying TCP forwarder (examples/null_proxy.rs) in spamgate's
# place shows the ceiling any proxy has on this machine.
#
#   bench/auth.sh                      # 20,000 messages, 4 KB, 100 sessions
#   QUICK=1 bench/auth.sh              # 2,000 messages: a smoke run
#   MESSAGES=5000 SIZE=4096 SESSIONS=100 bench/auth.sh
#   AUTH=off bench/auth.sh             # the same relay, authentication off
#   SPAMGATE_BIN=/path/spamgate bench/auth.sh   # that binary, no build (A/B runs)
#
# Needs the Debian packages postfix and knot, and dkimpy (.venv, see .ci/requirements.txt).
set -euo pipefail
shopt -s inherit_errexit

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/spamgate-target}"
if [[ "${QUICK:-0}" == 1 ]]; then MESSAGES="${MESSAGES:-2000}"; else MESSAGES="${MESSAGES:-20000}"; fi
SIZE="${SIZE:-4096}"
# AUTH=off measures the same relay with every authentication check off (the baseline).
if [[ "${AUTH:-on}" == off ]]; then AUTH_MODE='"off"'; DMARC_MODE='"off"'; else AUTH_MODE=tag; DMARC_MODE=enforce; fi
SESSIONS="${SESSIONS:-100}"
PYTHON="${SPAMGATE_PYTHON:-.venv/bin/python3}"
[[ -x "$PYTHON" ]] || PYTHON=python3
SOURCE=/usr/sbin/smtp-source

WORK="$(mktemp -d /tmp/spamgate-auth-bench.XXXXXX)"
# shellcheck source=bench/lib.sh
source bench/lib.sh

# knotd serving bench.example: SPF for 127.0.0.1, DMARC p=reject, the DKIM key.
start_dns() {
    DNS_PORT=$(free_port)
    local key
    key=$(cat tests/data/dkim/rsa.pub)
    cat >"$WORK/root.zone" <<EOF
. 60 IN SOA ns. hostmaster. 1 3600 600 86400 60
. 60 IN NS ns.
bench.example. 60 IN TXT "v=spf1 ip4:127.0.0.1 -all"
_dmarc.bench.example. 60 IN TXT "v=DMARC1; p=reject"
rsa._domainkey.bench.example. 60 IN TXT "v=DKIM1; k=rsa; p=${key:0:200}" "${key:200}"
EOF
    cat >"$WORK/knot.conf" <<EOF
server:
  rundir: "$WORK"
  listen: 127.0.0.1@$DNS_PORT
control:
  listen: "$WORK/knot.sock"
database:
  storage: "$WORK"
log:
  - target: stderr
    any: warning
zone:
  - domain: .
    file: "$WORK/root.zone"
EOF
    knotd -c "$WORK/knot.conf" >"$WORK/knot.log" 2>&1 &
    DNS_PID=$!
    PIDS+=("$DNS_PID")
    local tries=0
    until kdig @127.0.0.1 -p "$DNS_PORT" +short +timeout=1 bench.example TXT 2>/dev/null | grep -q spf1; do
        tries=$((tries + 1))
        ((tries < 250)) || { cat "$WORK/knot.log" >&2; return 1; }
        sleep 0.02
    done
}

# The message: signed over CRLF, stored with LF (smtp-source -F adds CRLF).
make_message() {
    {
        printf 'From: News <news@bench.example>\r\nTo: sink@sink.example\r\nSubject: bench\r\n'
        printf 'Date: Fri, 27 Nov 2026 05:00:00 +0000\r\nMessage-ID: <bench@bench.example>\r\n\r\n'
        head -c $((SIZE * 3 / 4)) /dev/urandom | base64 -w 76 | sed 's/$/\r/'
    } | "$PYTHON" tests/data/dkim/sign.py rsa relaxed/relaxed bench.example rsa | tr -d '\r' >"$WORK/message.txt"
}

start_spamgate() {
    GATE_PORT=$(free_port)
    METRICS_PORT=$(free_port)
    cat >"$WORK/spamgate.yaml" <<EOF
hostname: spamgate.bench
listen: ["127.0.0.1:$GATE_PORT"]
upstream:
  address: "127.0.0.1:$SINK_PORT"
  xclient: false
# smtp-sink accepts every recipient: without this the relay probe refuses to start.
relay_domains: [sink.example]
metrics:
  listen: "127.0.0.1:$METRICS_PORT"
limits:
  max_connections: 2000
  max_connections_per_ip: 2000
dns:
  nameservers: ["127.0.0.1:$DNS_PORT"]
auth:
  spf: {mode: $AUTH_MODE}
  dkim: {mode: $AUTH_MODE}
  arc: {mode: $AUTH_MODE}
  dmarc: {mode: $DMARC_MODE}
  from_header: $DMARC_MODE
EOF
    "$SPAMGATE" run --config "$WORK/spamgate.yaml" >"$WORK/spamgate.log" 2>&1 &
    GATE_PID=$!
    PIDS+=("$GATE_PID")
    wait_port "$GATE_PORT" "$GATE_PID"
}

measure() {
    local port=$1 start end
    start=$(date +%s.%N)
    "$SOURCE" -d -s "$SESSIONS" -m "$MESSAGES" -F "$WORK/message.txt" \
        -f news@bench.example -t sink@sink.example -M source.example "127.0.0.1:$port" \
        >"$WORK/source.out" 2>&1 || { cat "$WORK/source.out" >&2; return 1; }
    end=$(date +%s.%N)
    RATE=$(awk -v n="$MESSAGES" -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", n / (b - a) }')
}

cargo build --release --ignore-rust-version --example null_proxy >&2
NULL_PROXY="$CARGO_TARGET_DIR/release/examples/null_proxy"
if [[ -n "${SPAMGATE_BIN:-}" ]]; then
    SPAMGATE="$SPAMGATE_BIN"
else
    log "building spamgate (release) into $CARGO_TARGET_DIR"
    cargo build --release --ignore-rust-version --bin spamgate >&2
    SPAMGATE="$CARGO_TARGET_DIR/release/spamgate"
fi
start_dns
make_message
log "$(nproc) CPUs; $MESSAGES messages of $(wc -c <"$WORK/message.txt") bytes (DKIM-signed) in $SESSIONS sessions"

start_sink
measure "$SINK_PORT"
check_delivered "$MESSAGES"
direct=$RATE
stop "$SINK_PID"

start_sink
start_spamgate
measure "$GATE_PORT"
check_delivered "$MESSAGES"
through=$RATE
CPU=$(awk -v hz="$(getconf CLK_TCK)" -v n="$MESSAGES" '{ printf "%.0f", ($14 + $15) * 1000000 / hz / n }' "/proc/$GATE_PID/stat")
exec 3<>"/dev/tcp/127.0.0.1/$METRICS_PORT"
printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3
cat <&3 >"$WORK/metrics.txt"
exec 3<&-
passes=$({ grep -a 'spamgate_auth_results_total{method="dmarc",result="pass"}' "$WORK/metrics.txt" || true; } | awk '{ print $2 }')
# Lookups made through spamgate's resolver (SPF, DMARC); mail-auth's DKIM key lookups bypass
# this count (they are answered from the parsed-record cache until the key's TTL runs out).
lookups=$(awk -v n="$MESSAGES" '/^spamgate_dns_lookup_duration_seconds_count/ { s += $2 } END { printf "%.2f", s / n }' "$WORK/metrics.txt")
stop "$GATE_PID"
stop "$SINK_PID"

start_sink
NULL_PORT=$(free_port)
"$NULL_PROXY" "127.0.0.1:$NULL_PORT" "127.0.0.1:$SINK_PORT" &
NULL_PID=$!
PIDS+=("$NULL_PID")
wait_port "$NULL_PORT" "$NULL_PID"
measure "$NULL_PORT"
check_delivered "$MESSAGES"
null=$RATE
stop "$NULL_PID"
stop "$SINK_PID"

ratio=$(awk -v a="$through" -v b="$direct" 'BEGIN { printf "%.1f%%", 100 * a / b }')
null_ratio=$(awk -v a="$null" -v b="$direct" 'BEGIN { printf "%.1f%%", 100 * a / b }')
echo
printf '%-8s %8s %14s %16s %8s %20s %18s\n' size sessions "direct msg/s" "spamgate msg/s" ratio \
    "spamgate CPU µs/msg" "null proxy msg/s"
printf '%-8s %8s %14s %16s %8s %20s %18s\n' "$((SIZE / 1024)) KB" "$SESSIONS" "$direct" "$through" \
    "$ratio" "$CPU" "$null ($null_ratio)"
if [[ "${AUTH:-on}" != off ]]; then
    log "dkim+spf aligned, dmarc=pass counted ${passes:-0} times (of $MESSAGES); $lookups resolver lookups per message"
    [[ "${passes:-0}" == "$MESSAGES" ]] || { echo "not every message passed DMARC" >&2; exit 1; }
fi
