#!/usr/bin/env bash
# Side by side: smtp-sink direct, the byte-copying floor (HAProxy in TCP mode,
# Debian haproxy, and examples/null_proxy.rs), spamgate (checks off / all
# checks on / all checks plus the classifier and bulk fingerprints) and
# Haraka 3.3.4 (forward only / with spf, dkim, dns-list, headers, limit),
# 4 KB and 100 KB messages at 1, 10 and 100 sessions, all driven by the same
# load driver (examples/load.rs). Prints msgs/s, ratios to direct and to
# Haraka and to HAProxy, server CPU seconds per 1,000 messages, peak RSS, the
# p50/p99 time per message at 1 session, and the judgement's cost (CPU ms per
# message, checks on minus checks off) beside issue 16's goals. See
# docs/performance.md.
#
#   bench/compare.sh                  # the full run (about 10 minutes)
#   QUICK=1 bench/compare.sh          # a smoke run, small counts
#   SIZES="4096" SESSIONS="100" TARGETS="direct gate_on" bench/compare.sh
#   BUILD=0 bench/compare.sh          # use the release binaries already built
#   BUILD=0 SPAMGATE=/tmp/sg.old bench/compare.sh   # measure another spamgate binary
#   HARAKA_NODES=1 bench/compare.sh   # Haraka's shipped default: one process
#
# Installs when missing: Debian postfix (smtp-source, smtp-sink), haproxy, knot,
# redis-server, openssl; Haraka from npm into $SCRATCH/haraka (never the repo).
set -euo pipefail
shopt -s inherit_errexit

cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/spamgate-target}"
SCRATCH="${SCRATCH:-/var/tmp/spamgate-bench}"
HARAKA_VERSION=3.3.4
HARAKA_NODES="${HARAKA_NODES:-cpus}"
if [[ "${QUICK:-0}" == 1 ]]; then
    MESSAGES="${MESSAGES:-300}" SECONDS_CAP="${SECONDS_CAP:-5}"
else
    MESSAGES="${MESSAGES:-20000}" SECONDS_CAP="${SECONDS_CAP:-15}"
fi
SIZES="${SIZES:-4096 102400}"
SESSIONS="${SESSIONS:-1 10 100}"
TARGETS="${TARGETS:-direct haproxy null_proxy gate_off gate_on gate_full haraka_fwd haraka_plugins}"
SINK_NAME=sink.bench.test
CLIENT_IP=198.18.0.25 # RFC 2544 benchmark space: not "private" to Haraka
PYTHON="${SPAMGATE_PYTHON:-$ROOT/.venv/bin/python3}"
[[ -x "$PYTHON" ]] || PYTHON=python3

# shellcheck source=bench/lib.sh
source bench/lib.sh

# --- installation -----------------------------------------------------------

apt_install() {
    log "installing $*"
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2
}

install_tools() {
    local missing=()
    [[ -x /usr/sbin/smtp-sink ]] || missing+=(postfix)
    command -v haproxy >/dev/null || missing+=(haproxy)
    command -v knotd >/dev/null || missing+=(knot)
    command -v kdig >/dev/null || missing+=(knot-dnsutils)
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v openssl >/dev/null || missing+=(openssl)
    command -v node >/dev/null || missing+=(nodejs npm)
    ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
    "$PYTHON" -c 'import dkim' 2>/dev/null || die "dkimpy missing: $PYTHON -m pip install dkimpy"
    HARAKA_DIR="$SCRATCH/haraka"
    HARAKA="$HARAKA_DIR/node_modules/Haraka/bin/haraka"
    local have
    have=$(node -p "require('$HARAKA_DIR/node_modules/Haraka/package.json').version" 2>/dev/null || true)
    if [[ "$have" != "$HARAKA_VERSION" ]]; then
        log "installing Haraka $HARAKA_VERSION into $HARAKA_DIR"
        mkdir -p "$HARAKA_DIR"
        [[ -f "$HARAKA_DIR/package.json" ]] || echo '{"name":"spamgate-bench-haraka","private":true}' >"$HARAKA_DIR/package.json"
        (cd "$HARAKA_DIR" && npm install --no-audit --no-fund "Haraka@$HARAKA_VERSION" >&2)
    fi
}

# --- processes --------------------------------------------------------------

# The process and its children (Haraka's cluster workers).
tree() {
    local pid=$1
    echo "$pid"
    pgrep -P "$pid" 2>/dev/null || true
}

# utime+stime of a process tree, in clock ticks.
cpu_ticks() {
    local total=0 pid fields
    for pid in $(tree "$1"); do
        fields=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
        total=$((total + $(awk '{ print $12 + $13 }' <<<"$fields")))
    done
    echo "$total"
}

# Sum of VmHWM over a process tree, kB.
peak_rss() {
    local total=0 pid kb
    for pid in $(tree "$1"); do
        kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
        total=$((total + ${kb:-0}))
    done
    echo "$total"
}

# --- local DNS: knot serving bench.test on a loopback port ------------------

start_dns() {
    DNS_PORT=$(free_port)
    mkdir -p "$WORK/knot"
    local pubkey
    pubkey=$(openssl pkey -in "$WORK/dkim.pem" -pubout -outform DER | base64 -w0)
    # TXT strings are at most 255 bytes: split the key record.
    local split
    split=$(sed -E 's/(.{200})/\1" "/g' <<<"v=DKIM1; k=rsa; p=$pubkey")
    cat >"$WORK/knot/bench.test.zone" <<EOF
\$ORIGIN bench.test.
\$TTL 3600
@ SOA ns.bench.test. hostmaster.bench.test. 1 3600 600 86400 300
@ NS ns
ns A 127.0.0.1
client A $CLIENT_IP
sender A $CLIENT_IP
sender MX 10 client
sender TXT "v=spf1 ip4:198.18.0.0/15 -all"
s1._domainkey.sender TXT "$split"
_dmarc.sender TXT "v=DMARC1; p=reject; adkim=r; aspf=r"
sink A 127.0.0.1
sink MX 10 sink
; the DNSBL: only the usual test point is listed
2.0.0.127.dnsbl A 127.0.0.2
2.0.0.127.dnsbl TXT "listed for testing"
EOF
    cat >"$WORK/knot/knot.conf" <<EOF
server:
    rundir: "$WORK/knot"
    listen: 127.0.0.1@$DNS_PORT
database:
    storage: "$WORK/knot"
control:
    listen: "$WORK/knot/knot.sock"
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "$WORK/knot"
    file: "%s.zone"
    semantic-checks: off
zone:
  - domain: bench.test
EOF
    knotd -c "$WORK/knot/knot.conf" >"$WORK/knot/knot.log" 2>&1 &
    DNS_PID=$!
    PIDS+=("$DNS_PID")
    local tries=0
    until kdig -p "$DNS_PORT" @127.0.0.1 +short TXT sender.bench.test 2>/dev/null | grep -q spf1; do
        kill -0 "$DNS_PID" 2>/dev/null || { cat "$WORK/knot/knot.log" >&2; die "knotd died"; }
        tries=$((tries + 1))
        ((tries < 500)) || die "knot does not answer on port $DNS_PORT"
        sleep 0.02
    done
    log "knot serves bench.test on 127.0.0.1:$DNS_PORT"
}

start_redis() {
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$WORK" >"$WORK/redis.log" 2>&1 &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    wait_port "$REDIS_PORT" "$REDIS_PID"
}

# --- the sink and the servers ----------------------------------------------

gate_config() {
    local checks=$1
    cat <<EOF
hostname: spamgate.bench.test
listen: ["127.0.0.1:$SERVER_PORT"]
upstream:
  address: "127.0.0.1:$SINK_PORT"
  xclient: false
# smtp-sink accepts every recipient: without this the relay probe refuses to start.
relay_domains: [$SINK_NAME]
dns:
  nameservers: ["127.0.0.1:$DNS_PORT"]
limits:
  max_message_size: 10485760
  max_connections: 2000
  max_connections_per_ip: 2000
log:
  level: info
metrics:
  listen: "127.0.0.1:$METRICS_PORT"
EOF
    if [[ "$checks" == full ]]; then
        # A 1M-token database (bayes_bench million) and bulk fingerprints in
        # memory: every bench message is one campaign from one client, so
        # the counts grow but the bulk test (3 client networks) never fires.
        cat <<EOF
bayes:
  enabled: true
  data_dir: "$WORK/bayes"
bulk:
  enabled: true
EOF
    fi
    if [[ "$checks" == off ]]; then
        cat <<EOF
auth:
  spf: {mode: "off"}
  dkim: {mode: "off"}
  arc: {mode: "off"}
  dmarc: {mode: "off"}
  from_header: "off"
EOF
        return
    fi
    cat <<EOF
proxy_protocol:
  listeners: ["127.0.0.1:$SERVER_PORT"]
  trusted: ["127.0.0.1"]
auth:
  spf: {mode: enforce, reject_fail: true, helo: true}
  dkim: {mode: enforce}
  arc: {mode: tag}
  dmarc: {mode: enforce, quarantine: reject}
  from_header: enforce
reputation:
  dnsbl:
    zones: [{zone: dnsbl.bench.test, weight: 3}]
    threshold: 3
  helo: {enabled: true}
  rate_limits:
    limits:
      - {name: conn_ip, key: ip, count: connections, rate: 1000000/1s}
      - {name: msg_ip, key: ip, count: messages, rate: 1000000/1s}
      - {name: rcpt_sender, key: sender, count: recipients, rate: 1000000/1s}
      - {name: msg_domain, key: sender_domain, count: messages, rate: 1000000/1s}
rules:
  files: ["$WORK/rules.yaml"]
  watch: false
EOF
}

start_gate() {
    SERVER_PORT=$(free_port) METRICS_PORT=$(free_port)
    gate_config "$1" >"$WORK/spamgate.yaml"
    "$SPAMGATE" check --config "$WORK/spamgate.yaml" >/dev/null
    "$SPAMGATE" run --config "$WORK/spamgate.yaml" >"$WORK/spamgate.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_port "$SERVER_PORT" "$SERVER_PID" "$WORK/spamgate.log"
}

# The floor the issue measures against: HAProxy 2.6 in TCP mode, one
# thread per core, copying bytes.
start_haproxy() {
    SERVER_PORT=$(free_port)
    cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread $(nproc)
    maxconn 5000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend smtp
    bind 127.0.0.1:$SERVER_PORT
    default_backend sink
backend sink
    server sink 127.0.0.1:$SINK_PORT
EOF
    haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_port "$SERVER_PORT" "$SERVER_PID" "$WORK/haproxy.log"
}

# The floor for any proxy: examples/null_proxy.rs copies bytes and
# understands nothing (see docs/performance.md, "Session 3").
start_null_proxy() {
    SERVER_PORT=$(free_port)
    "$NULL_PROXY" "127.0.0.1:$SERVER_PORT" "127.0.0.1:$SINK_PORT" >"$WORK/null.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_port "$SERVER_PORT" "$SERVER_PID"
}

haraka_config() {
    local plugins=$1 dir=$2
    rm -rf "$dir"
    mkdir -p "$dir/config"
    cp -r "$HARAKA_DIR/node_modules/Haraka/config/." "$dir/config/"
    echo "haraka.bench.test" >"$dir/config/me"
    echo "sink.bench.test" >"$dir/config/host_list"
    printf 'listen=127.0.0.1:%s\nnodes=%s\n' "$SERVER_PORT" "$HARAKA_NODES" >"$dir/config/smtp.ini"
    printf 'host=127.0.0.1\nport=%s\n' "$SINK_PORT" >"$dir/config/smtp_forward.ini"
    if [[ "$plugins" == off ]]; then
        printf 'rcpt_to.in_host_list\nqueue/smtp_forward\n' >"$dir/config/plugins"
        return
    fi
    printf 'dns-list\nspf\nrcpt_to.in_host_list\ndkim\nheaders\nlimit\nqueue/smtp_forward\n' \
        >"$dir/config/plugins"
    # PROXY from the driver, as spamgate gets it: the client is CLIENT_IP.
    sed -i 's/^hosts\[\] =.*/hosts[] = 127.0.0.1/' "$dir/config/connection.ini"
    cat >"$dir/config/dns-list.ini" <<EOF
[main]
periodic_checks=0
zones[]=dnsbl.bench.test
search=all
reject=true
[dnsbl.bench.test]
type=block
EOF
    cat >"$dir/config/spf.ini" <<EOF
[deny]
mfrom_fail=true
helo_fail=false
EOF
    cat >"$dir/config/limit.ini" <<EOF
[redis]
host=127.0.0.1
port=$REDIS_PORT
db=4
[concurrency]
enabled=true
max=5000
[unrecognized_commands]
enabled=true
max=10
[errors]
enabled=true
max=10
[recipients]
enabled=true
max=100
[rate_conn]
enabled=true
default=1000000/1s
[rate_rcpt_host]
enabled=true
default=1000000/1s
[rate_rcpt_sender]
enabled=true
default=1000000/1s
[rate_rcpt]
enabled=true
default=1000000/1s
EOF
}

start_haraka() {
    SERVER_PORT=$(free_port)
    local dir="$WORK/haraka-$1"
    haraka_config "$1" "$dir"
    BENCH_DNS="127.0.0.1:$DNS_PORT" NODE_OPTIONS="--require $ROOT/bench/compare/dns-preload.js" \
        node "$HARAKA" -c "$dir" >"$WORK/haraka.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_port "$SERVER_PORT" "$SERVER_PID"
}

# Shows that the checks do real work on the bench message: spamgate's
# offline pipeline (same configuration, same DNS) must find SPF, DKIM and
# DMARC passing; Haraka's log must show its spf and dkim plugins passing.
sanity_gate() {
    local size out
    SINK_PORT=1 SERVER_PORT=1 METRICS_PORT=2
    gate_config on >"$WORK/sanity.yaml"
    for size in $SIZES; do
        out=$("$SPAMGATE" test --config "$WORK/sanity.yaml" --ip "$CLIENT_IP" --helo client.bench.test \
            --from bench@sender.bench.test --rcpt user@sink.bench.test "$WORK/msg-$size.eml")
        grep -q '"verdict": "accept"' <<<"$out" && grep -q '"spf": "pass"' <<<"$out" &&
            grep -q '"dkim": "pass"' <<<"$out" && grep -q '"dmarc": "pass"' <<<"$out" ||
            { echo "$out" >&2; die "spamgate's checks do not pass the $size-byte bench message"; }
    done
    log "spamgate test: SPF, DKIM and DMARC pass, DNSBL not listed, no rule refuses"
}

sanity_haraka() {
    grep -q '\[dkim\].*result=pass' "$WORK/haraka.log" && grep -q '\[spf\].*result=Pass' "$WORK/haraka.log" &&
        grep -q '\[dns-list\] pass:dnsbl.bench.test' "$WORK/haraka.log" ||
        die "Haraka's spf, dkim or dns-list plugin did not pass the message (see $WORK/haraka.log)"
}

# --- one measurement --------------------------------------------------------

# Runs the driver against port $1 with message $2 and $3 sessions; extra
# driver flags follow. Sets RATE, OK, P50, P99.
drive() {
    local port=$1 eml=$2 sessions=$3 out
    shift 3
    if ! out=$("$LOAD" --addr "127.0.0.1:$port" --eml "$eml" --sessions "$sessions" \
        --messages "$MESSAGES" --seconds "$SECONDS_CAP" "$@" 2>"$WORK/load.err"); then
        cat "$WORK/load.err" >&2
        die "the driver failed: $out"
    fi
    eval "$(tr ' ' '\n' <<<"$out" | sed -n 's/^\(ok\|rate\|p50_us\|p99_us\)=/LOAD_\1=/p')"
    RATE=${LOAD_rate%.*} OK=$LOAD_ok P50=$LOAD_p50_us P99=$LOAD_p99_us
}

# Measures target $1 at size $2 and $3 sessions; sets RATE, CPU (s per
# 1,000 messages), RSS (MB), P50, P99.
# What each check cost per run in the measurement just made, from
# spamgate_check_duration_seconds (wall time, DNS waits included).
check_times() {
    curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | awk -v size="$1" -v s="$2" '
        /^spamgate_check_duration_seconds_(sum|count)\{/ {
            match($0, /check="[^"]*"/); c = substr($0, RSTART + 7, RLENGTH - 8)
            if ($0 ~ /_sum\{/) sum[c] = $2; else n[c] = $2
        }
        END {
            for (c in n) if (n[c] > 0)
                printf "check time %s KB x %s: %-14s %8.1f us per run, %7d runs\n", size / 1024, s, c, sum[c] / n[c] * 1e6, n[c]
        }' | sort -k8 -g -r >&2
}

measure() {
    local target=$1 size=$2 sessions=$3 eml="$WORK/msg-$2.eml" before after proxy=()
    start_sink -C
    case $target in
    direct) SERVER_PID=$SINK_PID SERVER_PORT=$SINK_PORT ;;
    haproxy) start_haproxy ;;
    null_proxy) start_null_proxy ;;
    gate_off) start_gate off ;;
    gate_on) start_gate on; proxy=(--proxy "$CLIENT_IP") ;;
    gate_full) start_gate full; proxy=(--proxy "$CLIENT_IP") ;;
    haraka_fwd) start_haraka off ;;
    haraka_plugins) start_haraka on; proxy=(--proxy "$CLIENT_IP") ;;
    esac
    before=$(cpu_ticks "$SERVER_PID")
    drive "$SERVER_PORT" "$eml" "$sessions" "${proxy[@]}"
    after=$(cpu_ticks "$SERVER_PID")
    RSS=$(($(peak_rss "$SERVER_PID") / 1024))
    check_delivered "$OK"
    CPU=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$OK" \
        'BEGIN { printf "%.2f", t / hz / n * 1000 }')
    [[ "$target" == haraka_plugins ]] && sanity_haraka
    [[ "$target" == gate_on || "$target" == gate_full ]] && check_times "$size" "$sessions"
    [[ "$target" == direct ]] || stop "$SERVER_PID"
    stop "$SINK_PID"
}

# --- main -------------------------------------------------------------------

install_tools
if [[ "${BUILD:-1}" == 1 ]]; then
    log "building spamgate and the load driver (release) into $CARGO_TARGET_DIR"
    cargo build --release --ignore-rust-version --bin spamgate --example load --example null_proxy \
        --example bayes_bench --example dkim_floor >&2
fi
# SPAMGATE=/path/to/spamgate measures another build (A/B runs; BUILD=0 then).
SPAMGATE="${SPAMGATE:-$CARGO_TARGET_DIR/release/spamgate}"
LOAD="$CARGO_TARGET_DIR/release/examples/load"
NULL_PROXY="$CARGO_TARGET_DIR/release/examples/null_proxy"
BAYES_BENCH="$CARGO_TARGET_DIR/release/examples/bayes_bench"
DKIM_FLOOR="$CARGO_TARGET_DIR/release/examples/dkim_floor"

mkdir -p "$SCRATCH"
WORK=$(mktemp -d "$SCRATCH/run.XXXXXX")
# Private copies: other builds may replace the shared target's binaries mid-run.
BUILT=$(date -u -r "$SPAMGATE" +%H:%M:%SZ)
cp "$SPAMGATE" "$WORK/spamgate" && SPAMGATE="$WORK/spamgate"
cp "$LOAD" "$WORK/load" && LOAD="$WORK/load"
cp "$NULL_PROXY" "$WORK/null_proxy" && NULL_PROXY="$WORK/null_proxy"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/dkim.pem" 2>/dev/null
for size in $SIZES; do
    "$PYTHON" bench/compare/make_message.py "$size" "$WORK/dkim.pem" "$WORK/msg-$size.eml"
done
"$PYTHON" bench/compare/gen_rules.py 1000 "$WORK/rules.yaml"
if [[ " $TARGETS " == *" gate_full "* ]]; then
    log "building a 1M-token classifier database for gate_full"
    mkdir -p "$WORK/bayes"
    "$BAYES_BENCH" million "$WORK/bayes" >&2
fi
start_dns
start_redis
sanity_gate

COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
DIRTY=$(git status --porcelain 2>/dev/null | grep -qv '^??' && echo " (with uncommitted changes)" || true)
log "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), commit $COMMIT$DIRTY, spamgate built $BUILT"
log "up to $MESSAGES messages or $SECONDS_CAP s per measurement; Haraka $HARAKA_VERSION nodes=$HARAKA_NODES"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A R C M L
for size in $SIZES; do
    for sessions in $SESSIONS; do
        for target in $TARGETS; do
            measure "$target" "$size" "$sessions"
            key="$target/$size/$sessions"
            R[$key]=$RATE C[$key]=$CPU M[$key]=$RSS L[$key]="$P50/$P99"
            log "$(printf '%-15s %4s KB x %3s: %7s msgs/s  %6s cpu-s/1k  %5s MB  p50/p99 %s us  (load %s)' \
                "$target" $((size / 1024)) "$sessions" "$RATE" "$CPU" "$RSS" "$P50/$P99" \
                "$(cut -d' ' -f1 /proc/loadavg)")"
        done
    done
done

ratio() {
    [[ -n "${2:-}" && "${2:-0}" != 0 && -n "${1:-}" ]] || { echo "-"; return; }
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}

echo
echo "commit $COMMIT$DIRTY, spamgate binary built $BUILT; $(nproc) CPUs; load average at the start $LOAD_START, at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "up to $MESSAGES messages or $SECONDS_CAP s per cell; msgs/s (x direct, x HAProxy, x Haraka of the same kind); cpu-s per 1,000 msgs (= CPU ms per message); peak RSS"
echo
printf '| %-14s | %-6s | %-8s | %8s | %9s | %9s | %9s | %10s | %8s |\n' \
    target size sessions "msgs/s" "x direct" "x HAProxy" "x Haraka" "cpu-s/1k" "RSS MB"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' "----------------" "--------" "----------" \
    "---------:" "----------:" "----------:" "----------:" "-----------:" "---------:"
for size in $SIZES; do
    for sessions in $SESSIONS; do
        for target in $TARGETS; do
            key="$target/$size/$sessions"
            case $target in
            gate_off) vs=haraka_fwd ;;
            gate_on | gate_full) vs=haraka_plugins ;;
            *) vs="" ;;
            esac
            xh="-"
            [[ -n "$vs" ]] && xh=$(ratio "${R[$key]}" "${R[$vs/$size/$sessions]:-}")
            printf '| %-14s | %-6s | %-8s | %8s | %9s | %9s | %9s | %10s | %8s |\n' "$target" \
                "$((size / 1024)) KB" "$sessions" "${R[$key]}" \
                "$(ratio "${R[$key]}" "${R[direct/$size/$sessions]:-}")" \
                "$(ratio "${R[$key]}" "${R[haproxy/$size/$sessions]:-}")" "$xh" \
                "${C[$key]}" "${M[$key]}"
        done
    done
done

echo
echo "Time per message at 1 session (MAIL FROM to the reply after the final dot), microseconds; goals for the added p50: off <= 100, on <= 300:"
for size in $SIZES; do
    d="${L[direct/$size/1]:-}" g="${L[gate_on/$size/1]:-}" o="${L[gate_off/$size/1]:-}"
    [[ -n "$d" ]] || continue
    line="  $((size / 1024)) KB: direct p50/p99 $d"
    [[ -n "$o" ]] && line+=", spamgate checks off $o (added $((${o%/*} - ${d%/*}))/$((${o#*/} - ${d#*/})))"
    [[ -n "$g" ]] && line+=", spamgate checks on $g (added $((${g%/*} - ${d%/*}))/$((${g#*/} - ${d#*/})))"
    echo "$line"
done

# The judgement's cost and issue 16's goals, from the cells above.
minus() {
    [[ -n "${1:-}" && -n "${2:-}" ]] || { echo "-"; return; }
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'
}
echo
echo "Judgement cost, CPU ms per message (checks on minus checks off; full: with the classifier and bulk too):"
for size in $SIZES; do
    for sessions in $SESSIONS; do
        off="${C[gate_off/$size/$sessions]:-}"
        [[ -n "$off" ]] || continue
        echo "  $((size / 1024)) KB x $sessions: on $(minus "${C[gate_on/$size/$sessions]:-}" "$off") (goal <= 0.06)," \
            "full $(minus "${C[gate_full/$size/$sessions]:-}" "$off") (goal <= 0.12)"
    done
done
echo "Throughput against HAProxy at 100 sessions (goals: checks off >= 0.95, checks on >= 0.90) and Haraka (goal >= 20):"
for size in $SIZES; do
    h="${R[haproxy/$size/100]:-}"
    [[ -n "$h" ]] || continue
    echo "  $((size / 1024)) KB: off $(ratio "${R[gate_off/$size/100]:-}" "$h"), on $(ratio "${R[gate_on/$size/100]:-}" "$h")," \
        "full $(ratio "${R[gate_full/$size/100]:-}" "$h"); on x Haraka with plugins $(ratio "${R[gate_on/$size/100]:-}" "${R[haraka_plugins/$size/100]:-}")"
done
if [[ -f "$WORK/msg-4096.eml" ]]; then
    echo "The floor under the dkim check (examples/dkim_floor.rs, the 4 KB bench message; compare with 'check time ... dkim' above):"
    pubkey=$(openssl pkey -in "$WORK/dkim.pem" -pubout -outform DER | base64 -w0)
    "$DKIM_FLOOR" "$WORK/msg-4096.eml" s1._domainkey.sender.bench.test "v=DKIM1; k=rsa; p=$pubkey" | sed 's/^/  /'
fi
