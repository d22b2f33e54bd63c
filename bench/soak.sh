#!/usr/bin/env bash
# Soak test: sipmta under a steady mixed load for DURATION seconds (30 minutes by default), with
# its memory, open file descriptors, threads and data directory sampled every SAMPLE seconds,
# then the queue drained and every accepted message accounted for. See BENCHMARKS.md ("Soak").
#
#                     relay ----------------------------------> smtp-sink (counts, -c)
#   SMTP clients      fallback: SIP 404 for c.example's number, then relay --^
#   (new connection   bounce ---------------------------------> smtp-sink -f RCPT (5xx)
#    every 1-10    -> sipmta A  defer ----------------------------------> closed port (retries)
#    messages)        |  fast: SIP INVITE through A's built-in registrar, then SMTP on the stream
#                     |        ----------------------------------> sipmta B -> B's Maildir
#                     +-- failed / delayed DSNs to the sender alice@a.example -> A's own Maildir
#
# Site A is the daemon under test. It runs the built-in SIP registrar, which both sites (A's
# number 050-1111-1111 and B's 050-2222-2222) register with every minute (expires = 1m). Site B
# is the fast path's final server. Mix, sizes and schedule: bench/soak_tool.py.
#
# The bound (and why). After the warm-up, 20 more minutes of the same steady load must leave
# the process where it was:
#   - RSS: the median RSS over the last RSS_WINDOW s of load may exceed the median over the
#     RSS_WINDOW s after the warm-up (WARMUP, 10 min) by less than RSS_BOUND_MIB (16 MiB), for
#     A and for B. Short runs on this machine showed A's RSS at 17 MiB idle, 25-35 MiB in the
#     first minute of load, and moving by up to 4 MiB between samples (allocator arenas,
#     256 KiB bodies, tokio's blocking threads coming and going). 16 MiB is several times that
#     noise, and far below what a leak would add over those 20 minutes at 20 msg/s: 24,000
#     messages, so 16 MiB is 0.7 KiB per message.
#   - fds under load: the median over the last RSS_WINDOW s of load within FD_LOAD_SLACK (20) of
#     the median after the warm-up. The number open at any moment follows the connections in
#     flight (clients, relay connections kept idle for relay.connection_idle, fast-path sessions,
#     body files being written), which move by a few per sample.
#   - fds idle: after the drain and IDLE_AFTER s (longer than relay.connection_idle, 5 s, and
#     fastpath.session_idle) the count must be within FD_IDLE_SLACK (5) of the idle count before
#     the load started: everything opened for the load must have been closed.
#   - every accepted message at its destination: smtp-sink has relay + fallback, B's Maildir has
#     fast, the sender has a failed DSN for each bounce and defer (lost = 0, no duplicates), no
#     message of the load refused, both queues empty and no body file left in either spool.
#   The history of finished messages and the DSN tracking records are kept for
#   HISTORY_RETENTION (spool.history_retention and relay.tracking_retention, 3d and 7d by
#   default) and sled holds them in memory, about 1 KiB per message. The run keeps them for 5
#   minutes, half the warm-up, so that the bound is measured with the retention window full:
#   the steady state a site reaches once its retention period has passed. sled also keeps the
#   pages it writes in its cache up to spool.db_cache; the run caps it at DB_CACHE (16 MiB),
#   which the warm-up's writes fill, for the same reason. The data directory's sled database
#   is reported, not bounded.
#
# Usage (as root, like the other bench scripts; smtp-sink -u needs it):
#   bench/soak.sh                                # 30 minutes at 20 msg/s, about 35 minutes in all
#   DURATION=120 WARMUP=40 bench/soak.sh         # a quick check
# Knobs (environment variables, defaults in brackets):
#   DURATION [1800]         seconds of load
#   RATE [20]               messages per second offered (a fixed schedule, not closed-loop)
#   CLIENTS [4]             parallel SMTP clients sharing the schedule
#   PER_CONN [10]           each connection carries a random 1..PER_CONN messages, then QUIT
#   MIX ["relay=45,fast=40,fallback=5,bounce=5,defer=5"]  weights of the message classes
#   SIZES ["1024,8192,65536,262144"] / SIZE_WEIGHTS ["70,20,8,2"]  body sizes and their weights
#   SAMPLE [10]             seconds between samples
#   WARMUP [600]            seconds of load before the reference sample (the bound's start)
#   RSS_WINDOW [60]         seconds of samples whose median is compared at each end
#   RSS_BOUND_MIB [16]      see above
#   FD_LOAD_SLACK [20] / FD_IDLE_SLACK [5]   see above
#   IDLE_AFTER [20]         seconds idle after the drain before the final sample
#   DRAIN_TIMEOUT [300]     fail when the queues have not drained this long after the load
#                           (the last deferred message needs DEFER_LIFETIME plus one retry)
#   DEFER_LIFETIME [60s]    A's relay.lifetime: when a deferred message fails (its DSN is the check)
#   DEFER_RETRY [10s]       A's relay.retry (one wait, repeated)
#   DELAY_WARNING [30s]     A's relay.delay_warning: one delayed DSN per deferred message
#   HISTORY_RETENTION [5m]  both sites' spool.history_retention and relay.tracking_retention
#   DB_CACHE [16MiB]        both sites' spool.db_cache (sled's page cache; 64MiB by default):
#                           smaller than the default so that it is full before the warm-up ends
#   FP_SESSION_IDLE [100ms] A's fastpath.session_idle: short, so that about half the fast messages
#                           find an idle session (RSET, reuse) and half set up a new SIP call
#   SIPMTA_LOG [info]       both daemons' log filter (JSON lines; the tool counts deliveries in them)
#   SIPMTA_BIN []           sipmta binary; empty: `cargo build --release -p sipmta` here
#                           (CARGO_TARGET_DIR is honoured)
#   SIPMTA_REV []           label for a given SIPMTA_BIN (commit); default: git rev-parse
#   PORT_BASE [39400]       39400-39411: sink +0, rejecting sink +1, (+2 unused), A +3..+7
#                           (SMTP, admin, SIP, stream, registrar), B +8..+11 (SMTP, admin, SIP, stream)
#   CLOSED_PORT [9]         where defer.example is relayed: nothing may listen there, and it
#                           must be below the ephemeral port range (see below)
#   WORK_PARENT [/var/tmp]  the data dirs live in a temp dir here
#   A_ENV [] / B_ENV []     extra environment for daemon A / B, as NAME=VALUE words, e.g.
#                           A_ENV="MALLOC_ARENA_MAX=2" (glibc malloc tunables, an LD_PRELOAD shim)
#   KEEP [0]                1: keep the temp dir (logs, data dirs, record)
#   RESULTS_DIR [bench/results]
# Output: bench/results/soak-<date>-<rev>.md (bounds, verdict, totals, a sample a minute) and
# .csv (every sample). Exits 1 when a bound is not met.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
TOOL="$HERE/soak_tool.py"

DURATION=${DURATION:-1800}
RATE=${RATE:-20}
CLIENTS=${CLIENTS:-4}
PER_CONN=${PER_CONN:-10}
MIX=${MIX:-"relay=45,fast=40,fallback=5,bounce=5,defer=5"}
SIZES=${SIZES:-"1024,8192,65536,262144"}
SIZE_WEIGHTS=${SIZE_WEIGHTS:-"70,20,8,2"}
SAMPLE=${SAMPLE:-10}
WARMUP=${WARMUP:-600}
RSS_WINDOW=${RSS_WINDOW:-60}
RSS_BOUND_MIB=${RSS_BOUND_MIB:-16}
FD_LOAD_SLACK=${FD_LOAD_SLACK:-20}
FD_IDLE_SLACK=${FD_IDLE_SLACK:-5}
IDLE_AFTER=${IDLE_AFTER:-20}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-300}
DEFER_LIFETIME=${DEFER_LIFETIME:-60s}
DEFER_RETRY=${DEFER_RETRY:-10s}
DELAY_WARNING=${DELAY_WARNING:-30s}
FP_SESSION_IDLE=${FP_SESSION_IDLE:-100ms}
HISTORY_RETENTION=${HISTORY_RETENTION:-5m}
DB_CACHE=${DB_CACHE:-16MiB}
SIPMTA_LOG=${SIPMTA_LOG:-info}
SIPMTA_BIN=${SIPMTA_BIN:-}
SIPMTA_REV=${SIPMTA_REV:-}
PORT_BASE=${PORT_BASE:-39400}
WORK_PARENT=${WORK_PARENT:-/var/tmp}
KEEP=${KEEP:-0}
A_ENV=${A_ENV:-}
B_ENV=${B_ENV:-}
RESULTS_DIR=${RESULTS_DIR:-$HERE/results}

SINK_PORT=$PORT_BASE
REJECT_PORT=$((PORT_BASE + 1))
# defer.example is relayed to a port where nothing listens. It must lie below the kernel's
# ephemeral range: a connect to a closed port inside that range can get that same port as its
# source and then connects to itself (TCP simultaneous open). The attempt then waits for a
# greeting that never comes (5 min, RFC 5321's initial 220 timeout): seen once in a run with
# 39402, which held one message past its lifetime.
CLOSED_PORT=${CLOSED_PORT:-9}
A_PORT=$((PORT_BASE + 3))      # SMTP; admin +1, SIP +2, stream +3, registrar +4
B_PORT=$((PORT_BASE + 8))      # SMTP; admin +1, SIP +2, stream +3
REG_PORT=$((A_PORT + 4))
TEL_A="050-1111-1111"
TEL_B="050-2222-2222"
TEL_C="050-3333-3333" # routed to, never registered: the call fails and A relays

say() { printf '[soak.sh] %s\n' "$*" >&2; }
fail() { printf '[soak.sh] FAIL: %s\n' "$*" >&2; exit 1; }
# shellcheck source=lib.sh
. "$HERE/lib.sh"

# ------------------------------------------------------------------------------ prerequisites
[ "$(id -u)" = 0 ] || fail "run as root (smtp-sink -u needs it)"
missing=()
command -v smtp-sink >/dev/null || missing+=(postfix)
command -v python3 >/dev/null || missing+=(python3)
command -v ss >/dev/null || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
    pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
    say "installing missing Debian packages: $pkgs(only smtp-sink is used; the system Postfix is not started)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y $pkgs >&2
fi

for p in $(seq "$PORT_BASE" $((PORT_BASE + 11))) "$CLOSED_PORT"; do
    port_free "$p" || fail "127.0.0.1:$p is in use (set PORT_BASE or CLOSED_PORT): a stale smtp-sink would steal connections"
done
ephemeral_low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range)
[ "$CLOSED_PORT" -lt "$ephemeral_low" ] || fail "CLOSED_PORT $CLOSED_PORT is in the ephemeral port range (from $ephemeral_low): a connect to it can connect to itself"

# ------------------------------------------------------------------------------ work dir, teardown
mkdir -p "$WORK_PARENT"
W=$(mktemp -d "$WORK_PARENT/sipmta-soak.XXXXXX")
declare -A SIPMTA_PID=()
SINK_PID="" STAMP_PID="" REJECT_PID="" RUN_PID=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    [ -n "$RUN_PID" ] && stop_pid "$RUN_PID"
    for p in "${SIPMTA_PID[@]}"; do stop_pid "$p"; done
    for p in $SINK_PID $REJECT_PID $STAMP_PID; do stop_pid "$p"; done
    if [ "$KEEP" = 1 ] || [ $rc -ne 0 ]; then
        say "work dir kept: $W (logs: sipmta-*/sipmta.log, sink.err; record: soak.json)"
    else
        rm -rf "$W"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# ------------------------------------------------------------------------------ sipmta binary
build_sipmta "$REPO"

# ------------------------------------------------------------------------------ sinks
# The sink counts (relay_tool.py stamp records its running counter); the second one refuses
# every RCPT with a 5xx, so A bounces what it relays there.
: >"$W/sink.stamps"
mkfifo "$W/sink.fifo"
python3 "$HERE/relay_tool.py" stamp "$W/sink.stamps" <"$W/sink.fifo" &
STAMP_PID=$!
smtp-sink -u nobody -c "127.0.0.1:$SINK_PORT" 256 >"$W/sink.fifo" 2>"$W/sink.err" &
SINK_PID=$!
smtp-sink -u nobody -f RCPT "127.0.0.1:$REJECT_PORT" 64 >/dev/null 2>"$W/reject-sink.err" &
REJECT_PID=$!
wait_port "$SINK_PORT" 10 smtp-sink "$SINK_PID"
wait_port "$REJECT_PORT" 10 "the rejecting smtp-sink" "$REJECT_PID"

# ------------------------------------------------------------------------------ sipmta sites
start_sipmta() { # name smtp_port top-level-keys sections
    local name=$1 port=$2 dir="$W/sipmta-$1"
    mkdir -p "$dir"
    cat >"$dir/sipmta.toml" <<EOF
hostname = "$name.soak.invalid"
data_dir = "$dir/data"
$3

[smtp]
listen = ["127.0.0.1:$port"]

[submission]
listen = []

[admin]
listen = ["127.0.0.1:$((port + 1))"]

[spool]
min_free_space = 0
history_retention = "$HISTORY_RETENTION"
db_cache = "$DB_CACHE"

[log]
format = "json"

$4
EOF
    "$SIPMTA_BIN" check-config "$dir/sipmta.toml" >/dev/null || fail "sipmta check-config $dir/sipmta.toml failed"
    local extra_env
    if [ "$name" = a ]; then extra_env=$A_ENV; else extra_env=$B_ENV; fi
    # shellcheck disable=SC2086
    env SIPMTA_LOG="$SIPMTA_LOG" $extra_env "$SIPMTA_BIN" serve --config "$dir/sipmta.toml" 2>"$dir/sipmta.log" &
    SIPMTA_PID[$name]=$!
    wait_port "$port" 30 "sipmta $name" "${SIPMTA_PID[$name]}"
    wait_port "$((port + 1))" 10 "sipmta $name admin API" "${SIPMTA_PID[$name]}"
}
# A: the site under test, with the registrar; its clients are trusted to relay.
start_sipmta a "$A_PORT" 'local_domains = ["a.example"]
trusted_networks = ["127.0.0.0/8"]' "[registrar]
enabled = true
listen = \"127.0.0.1:$REG_PORT\"
domain = \"sip.soak.invalid\"

[fastpath]
enabled = true
sip_listen = \"127.0.0.1:$((A_PORT + 2))\"
stream_listen = \"127.0.0.1:$((A_PORT + 3))\"
proxy = \"127.0.0.1:$REG_PORT\"
domain = \"sip.soak.invalid\"
session_idle = \"$FP_SESSION_IDLE\"

[[fastpath.numbers]]
number = \"$TEL_A\"
expires = \"1m\"

[relay]
starttls = \"none\"
nameservers = [\"127.0.0.1:9\"]
tracking_retention = \"$HISTORY_RETENTION\"
retry = [\"$DEFER_RETRY\"]
lifetime = \"$DEFER_LIFETIME\"
delay_warning = \"$DELAY_WARNING\"

[relay.transport]
\"relay.example\" = \"[127.0.0.1]:$SINK_PORT\"
\"c.example\" = \"[127.0.0.1]:$SINK_PORT\"
\"reject.example\" = \"[127.0.0.1]:$REJECT_PORT\"
\"defer.example\" = \"[127.0.0.1]:$CLOSED_PORT\""
wait_port "$REG_PORT" 10 "A's registrar" "${SIPMTA_PID[a]}"
# B: the fast path's final server; registers its number with A's registrar.
start_sipmta b "$B_PORT" 'local_domains = ["b.example"]' "[registrar]
enabled = false

[fastpath]
enabled = true
sip_listen = \"127.0.0.1:$((B_PORT + 2))\"
stream_listen = \"127.0.0.1:$((B_PORT + 3))\"
proxy = \"127.0.0.1:$REG_PORT\"
domain = \"sip.soak.invalid\"

[[fastpath.numbers]]
number = \"$TEL_B\"
expires = \"1m\"

[relay]
starttls = \"none\"
nameservers = [\"127.0.0.1:9\"]
tracking_retention = \"$HISTORY_RETENTION\""
for r in "b.example $TEL_B" "c.example $TEL_C"; do
    # shellcheck disable=SC2086
    "$SIPMTA_BIN" --config "$W/sipmta-a/sipmta.toml" route add $r >/dev/null || fail "sipmta a: route add $r failed"
done
# B must be registered before the load starts, or the first fast messages fall back to relay.
for _ in $(seq 100); do grep -q '"registered"\|registered number' "$W/sipmta-b/sipmta.log" && break; sleep 0.1; done

# ------------------------------------------------------------------------------ run
START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say "work dir $W; sink :$SINK_PORT, rejecting sink :$REJECT_PORT; A :$A_PORT (registrar :$REG_PORT), B :$B_PORT"
say "sipmta: $SIPMTA_BIN ($SIPMTA_REV); $DURATION s at $RATE msg/s, sample every $SAMPLE s"
python3 "$TOOL" run --port "$A_PORT" --duration "$DURATION" --rate "$RATE" --clients "$CLIENTS" \
    --per-conn "$PER_CONN" --mix "$MIX" --sizes "$SIZES" --size-weights "$SIZE_WEIGHTS" --sample "$SAMPLE" \
    --warmup "$WARMUP" --idle-after "$IDLE_AFTER" \
    --drain-timeout "$DRAIN_TIMEOUT" \
    --a-pid "${SIPMTA_PID[a]}" --a-data "$W/sipmta-a/data" --a-config "$W/sipmta-a/sipmta.toml" --a-log "$W/sipmta-a/sipmta.log" \
    --b-pid "${SIPMTA_PID[b]}" --b-data "$W/sipmta-b/data" --b-config "$W/sipmta-b/sipmta.toml" --b-log "$W/sipmta-b/sipmta.log" \
    --sipmta-bin "$SIPMTA_BIN" --stamps "$W/sink.stamps" --csv "$W/soak.csv" --json "$W/soak.json" &
RUN_PID=$! # in the background, so that a signal reaches the trap at once
wait "$RUN_PID" || fail "the soak run failed (work dir $W)"
RUN_PID=""
for s in a b; do kill -0 "${SIPMTA_PID[$s]}" 2>/dev/null || fail "sipmta $s died (see $W/sipmta-$s/sipmta.log)"; done
T_END=$(date +%s)

# ------------------------------------------------------------------------------ report
mkdir -p "$RESULTS_DIR"
day=$(date -u +%Y-%m-%d)
rev=$(echo "$SIPMTA_REV" | awk '{print $1}')
out="$RESULTS_DIR/soak-$day-$rev.md"
[ -e "$out" ] && out="$RESULTS_DIR/soak-$day-$rev-$(date -u +%H%M).md"
rc=0
{
    echo "# Soak test, $START_DATE"
    echo
    echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), kernel $(uname -r); load average at start $LOAD_START (shared machine)"
    echo "- sipmta $SIPMTA_REV, SIPMTA_LOG=$SIPMTA_LOG (JSON); site A under test (built-in registrar, fast path with session_idle $FP_SESSION_IDLE, relay retry $DEFER_RETRY, delay_warning $DELAY_WARNING, lifetime $DEFER_LIFETIME); history and tracking kept $HISTORY_RETENTION and db_cache $DB_CACHE on both sites; site B the fast path's final server"
    echo "- load: $DURATION s at $RATE msg/s from $CLIENTS clients, 1-$PER_CONN messages per connection, mix $MIX, body sizes $SIZES bytes weighted $SIZE_WEIGHTS; samples every $SAMPLE s, warm-up $WARMUP s; the whole run took $(((T_END - T_START) / 60)) min $(((T_END - T_START) % 60)) s"
    if [ -n "$A_ENV$B_ENV" ]; then echo "- extra environment: A \`${A_ENV:-(none)}\`, B \`${B_ENV:-(none)}\`"; fi
    echo "- command: \`DURATION=$DURATION RATE=$RATE WARMUP=$WARMUP bench/soak.sh\`; every sample: \`$(basename "${out%.md}").csv\`"
    echo
    python3 "$TOOL" report --json "$W/soak.json" --rss-mib "$RSS_BOUND_MIB" --fd-load "$FD_LOAD_SLACK" \
        --fd-idle "$FD_IDLE_SLACK" --window "$RSS_WINDOW" --every 60 || rc=$?
} >"$out.tmp"
mv "$out.tmp" "$out"
cp "$W/soak.csv" "${out%.md}.csv"
echo
cat "$out"
say "results: $out (every sample: ${out%.md}.csv)"
[ "$rc" = 0 ] || fail "a bound was not met (see $out)"
