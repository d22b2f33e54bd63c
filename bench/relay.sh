#!/usr/bin/env bash
# Relay benchmark: Postfix's smtp-source -> MTA -> smtp-sink, for sipmta and for a private
# Postfix instance side by side in the same run, all relaying to the same smtp-sink.
# See BENCHMARKS.md for what is measured and how to read the results.
#
# Usage (as root: the private Postfix and smtp-sink need it):
#   bench/relay.sh
#   RUNS=5 SIPMTA_BIN=/path/to/sipmta bench/relay.sh
# Knobs (environment variables, defaults in brackets):
#   RUNS [3]                measured runs per MTA and size; the MTAs alternate (ABBA order)
#   SIZES ["1024 102400"]   message payload sizes in bytes (smtp-source -l)
#   COUNT_SMALL [10000]     messages per run for sizes <= 10 KiB
#   COUNT_LARGE [5000]      messages per run for larger sizes
#   SESSIONS [20]           parallel smtp-source sessions (smtp-source -s)
#   WARMUP [1000]           1 KiB messages sent to each MTA before the measured runs (0: none)
#   PROBE_RATE [10]         latency probe transactions per second during a run (0: off)
#   STALL [30]              fail when the sink receives nothing for this many seconds
#   QUIET_MAX [0.25]        before each run wait (up to QUIET_WAIT [60] s) until CPU use by
#   QUIET_WAIT [60]         everything else is below this many cores; recorded either way
#   MTAS ["postfix sipmta"] which MTAs to run, from: postfix sipmta sipmta-fsync. sipmta-fsync
#                           is the same sipmta binary with sled's sync_file_range(2) turned
#                           into fdatasync(2) by bench/sync_shim.c (LD_PRELOAD): a durability
#                           cross-check for builds that rely on sled's flush (BENCHMARKS.md)
#   SIPMTA_BIN []           sipmta binary; empty: `cargo build --release -p sipmta` here
#   SIPMTA_REV []           label for a given SIPMTA_BIN (commit); default: git describe
#   SIPMTA_LOG [warn]       sipmta log filter (info logs one line per delivery)
#   SIPMTA_PER_DEST [20]    sipmta [relay] max_connections_per_destination (Postfix: 20)
#   SIPMTA_MAX_CONN [100]   sipmta [relay] max_connections
#   POSTFIX_MAIN_CF_EXTRA []  lines appended to the private Postfix's main.cf (experiments only;
#                           the committed results use Postfix's defaults)
#   PERF [0]                1: after the runs, profile sipmta with `perf record` during one
#                           extra 1 KiB run and add the top symbols to the results
#   PORT_BASE [39200]       sink +0, Postfix +1, sipmta +2 (admin API +3), sipmta-fsync +4 (+5)
#   WORK_PARENT [/var/tmp]  the spools live in a temp dir here: put it on the disk to measure
#   KEEP [0]                1: keep the temp dir (logs, spools, raw records) for inspection
#   RESULTS_DIR [bench/results]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
TOOL="$HERE/relay_tool.py"

RUNS=${RUNS:-3}
SIZES=${SIZES:-"1024 102400"}
COUNT_SMALL=${COUNT_SMALL:-10000}
COUNT_LARGE=${COUNT_LARGE:-5000}
SESSIONS=${SESSIONS:-20}
WARMUP=${WARMUP:-1000}
PROBE_RATE=${PROBE_RATE:-10}
STALL=${STALL:-30}
QUIET_MAX=${QUIET_MAX:-0.25}
QUIET_WAIT=${QUIET_WAIT:-60}
MTAS=${MTAS:-"postfix sipmta"}
SIPMTA_BIN=${SIPMTA_BIN:-}
SIPMTA_REV=${SIPMTA_REV:-}
SIPMTA_LOG=${SIPMTA_LOG:-warn}
SIPMTA_PER_DEST=${SIPMTA_PER_DEST:-20}
SIPMTA_MAX_CONN=${SIPMTA_MAX_CONN:-100}
PERF=${PERF:-0}
POSTFIX_MAIN_CF_EXTRA=${POSTFIX_MAIN_CF_EXTRA:-}
PORT_BASE=${PORT_BASE:-39200}
WORK_PARENT=${WORK_PARENT:-/var/tmp}
KEEP=${KEEP:-0}
RESULTS_DIR=${RESULTS_DIR:-$HERE/results}

SINK_PORT=$PORT_BASE
declare -A MTA_PORT=([postfix]=$((PORT_BASE + 1)) [sipmta]=$((PORT_BASE + 2)) [sipmta-fsync]=$((PORT_BASE + 4)))
declare -A ADMIN_PORT=([sipmta]=$((PORT_BASE + 3)) [sipmta-fsync]=$((PORT_BASE + 5)))
declare -A MTA_PID=()
RCPT="rcpt@example.com"

say() { printf '[relay.sh] %s\n' "$*" >&2; }
fail() { printf '[relay.sh] FAIL: %s\n' "$*" >&2; exit 1; }
# shellcheck source=lib.sh
. "$HERE/lib.sh"
has_mta() { [[ " $MTAS " == *" $1 "* ]]; }

for m in $MTAS; do [ -n "${MTA_PORT[$m]:-}" ] || fail "unknown MTA '$m' in MTAS"; done

# ------------------------------------------------------------------------------ prerequisites
[ "$(id -u)" = 0 ] || fail "run as root (a private Postfix instance and smtp-sink -u need it)"
missing=()
for c in smtp-source smtp-sink postfix postconf; do command -v "$c" >/dev/null || missing+=(postfix); done
command -v python3 >/dev/null || missing+=(python3)
command -v ss >/dev/null || missing+=(iproute2)
if has_mta sipmta-fsync && ! command -v cc >/dev/null; then missing+=(gcc); fi
if [ ${#missing[@]} -gt 0 ]; then
    pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
    say "installing missing Debian packages: $pkgs(the system-wide Postfix is not used)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y $pkgs >&2
fi
if [ "$PERF" = 1 ] && ! command -v perf >/dev/null; then
    say "installing linux-perf for PERF=1"
    DEBIAN_FRONTEND=noninteractive apt-get install -y linux-perf >&2
fi

for p in $(seq "$PORT_BASE" $((PORT_BASE + 5))); do
    port_free "$p" || fail "127.0.0.1:$p is in use (set PORT_BASE): a stale smtp-sink would steal connections"
done

# ------------------------------------------------------------------------------ work dir, teardown
mkdir -p "$WORK_PARENT"
W=$(mktemp -d "$WORK_PARENT/sipmta-relay-bench.XXXXXX")
chmod 755 "$W" # Postfix's unprivileged daemons must reach their queue below it
CG=""
SINK_PID="" STAMP_PID="" RUN_PID="" PF_ETC="$W/postfix/etc" PF_STARTED=0

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [ -n "$RUN_PID" ]; then # a measurement in progress: it stops smtp-source and the probe
        kill -TERM "$RUN_PID" 2>/dev/null
        wait "$RUN_PID" 2>/dev/null
    fi
    for p in "${MTA_PID[@]}"; do
        kill -0 "$p" 2>/dev/null || continue
        kill -TERM "$p"
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    if [ "$PF_STARTED" = 1 ]; then
        local mpid
        mpid=$(head -1 "$W/postfix/queue/pid/master.pid" 2>/dev/null | tr -d ' ')
        postfix -c "$PF_ETC" stop >/dev/null 2>&1
        for _ in $(seq 100); do [ -n "$mpid" ] && kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
        [ -n "$mpid" ] && kill -0 "$mpid" 2>/dev/null && postfix -c "$PF_ETC" abort >/dev/null 2>&1
    fi
    for p in $SINK_PID $STAMP_PID; do
        kill -TERM "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    if [ -n "$CG" ]; then
        echo $$ >"$(dirname "$CG")/cgroup.procs" 2>/dev/null
        for _ in $(seq 50); do
            rmdir "$CG"/* 2>/dev/null
            rmdir "$CG" 2>/dev/null && break
            sleep 0.1
        done
        [ -d "$CG" ] && say "warning: could not remove cgroup $CG (processes left?)"
    fi
    if [ "$KEEP" = 1 ] || [ $rc -ne 0 ]; then
        say "work dir kept: $W (logs: */sipmta.log, postfix/maillog, sink.err)"
    else
        rm -rf "$W"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# CPU accounting per component: a cgroup each (v1 cpuacct, else v2), when available.
for base in /sys/fs/cgroup/cpuacct /sys/fs/cgroup/unified /sys/fs/cgroup; do
    if [ -w "$base" ] && { [ -f "$base/cpuacct.usage" ] || [ -f "$base/cgroup.procs" ]; }; then
        if mkdir "$base/sipmta-relay-bench.$$" 2>/dev/null; then
            CG="$base/sipmta-relay-bench.$$"
            mkdir "$CG/postfix" "$CG/sipmta" "$CG/sipmta-fsync" "$CG/source" "$CG/sink" "$CG/harness"
            break
        fi
    fi
done
[ -n "$CG" ] || say "no writable cgroup hierarchy: CPU use per component will be n/a"
# Run "$@" inside cgroup $1 (no-op without cgroups). Call in a subshell.
in_cg() {
    local g=$1
    shift
    if [ -n "$CG" ]; then echo $BASHPID >"$CG/$g/cgroup.procs"; fi
    exec "$@"
}
if [ -n "$CG" ]; then echo $$ >"$CG/harness/cgroup.procs"; fi

# Block device holding the work dir (for /proc/diskstats).
DEV=$(df -P "$W" | awk 'NR==2 {print $1}')
DISK=$(basename "$(readlink -f "$DEV")")
grep -qw "$DISK" /proc/diskstats || DISK=""

# ------------------------------------------------------------------------------ sipmta binary
build_sipmta "$REPO"

# ------------------------------------------------------------------------------ smtp-sink
# One sink for the whole benchmark (restarting it would break the MTAs' cached connections).
# Its running counter (-c) goes through `relay_tool.py stamp`, which timestamps every change.
: >"$W/sink.stamps"
mkfifo "$W/sink.fifo"
(in_cg harness python3 "$TOOL" stamp "$W/sink.stamps" <"$W/sink.fifo") &
STAMP_PID=$!
(in_cg sink smtp-sink -u nobody -c "127.0.0.1:$SINK_PORT" 1024 >"$W/sink.fifo" 2>"$W/sink.err") &
SINK_PID=$!
wait_port "$SINK_PORT" 10 smtp-sink

# ------------------------------------------------------------------------------ Postfix
# A private instance: own config and queue directories, no chroot, no local delivery,
# everything relayed to the sink. Queue files are fsynced before 250 (Postfix default).
mkdir -p "$PF_ETC" "$W/postfix/queue" "$W/postfix/data"
chown postfix "$W/postfix/data"
cat >"$PF_ETC/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $W/postfix/queue
data_directory = $W/postfix/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-bench.localdomain
mydomain = localdomain
myorigin = \$myhostname
mydestination =
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost = [127.0.0.1]:$SINK_PORT
maillog_file = $W/postfix/maillog
biff = no
smtpd_peername_lookup = no
${POSTFIX_MAIN_CF_EXTRA:-}
EOF
cat >"$PF_ETC/master.cf" <<EOF
127.0.0.1:${MTA_PORT[postfix]} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
if has_mta postfix; then
    postfix -c "$PF_ETC" check >&2 || fail "postfix check failed"
    PF_STARTED=1
    (in_cg postfix postfix -c "$PF_ETC" start >&2) || fail "postfix did not start (see $W/postfix/maillog)"
    wait_port "${MTA_PORT[postfix]}" 20 Postfix
fi

postfix_queue_files() {
    find "$W/postfix/queue/incoming" "$W/postfix/queue/active" "$W/postfix/queue/deferred" \
        "$W/postfix/queue/hold" "$W/postfix/queue/maildrop" -type f 2>/dev/null | wc -l
}

# ------------------------------------------------------------------------------ sipmta
# "sipmta" runs as built; "sipmta-fsync" is the same binary and config with the shim preloaded.
if has_mta sipmta-fsync; then
    cc -O2 -shared -fPIC -o "$W/sync_shim.so" "$HERE/sync_shim.c" || fail "cannot build bench/sync_shim.c"
fi
start_sipmta() { # name preload
    local name=$1 preload=$2 dir="$W/$1"
    mkdir -p "$dir"
    cat >"$dir/sipmta.toml" <<EOF
hostname = "sipmta-bench.localdomain"
data_dir = "$dir/data"
trusted_networks = ["127.0.0.0/8"]

[smtp]
listen = ["127.0.0.1:${MTA_PORT[$name]}"]

[submission]
listen = []

[admin]
listen = ["127.0.0.1:${ADMIN_PORT[$name]}"]

[spool]
min_free_space = 0

[limits]
max_sessions = 200
max_sessions_per_client = 200

[relay]
max_connections = $SIPMTA_MAX_CONN
max_connections_per_destination = $SIPMTA_PER_DEST
starttls = "none"

[relay.transport]
"example.com" = "[127.0.0.1]:$SINK_PORT"
EOF
    "$SIPMTA_BIN" check-config "$dir/sipmta.toml" >/dev/null || fail "sipmta check-config $dir/sipmta.toml failed"
    (
        export SIPMTA_LOG
        if [ -n "$preload" ]; then export LD_PRELOAD=$preload; fi
        in_cg "$name" "$SIPMTA_BIN" serve --config "$dir/sipmta.toml" 2>"$dir/sipmta.log"
    ) &
    MTA_PID[$name]=$!
    wait_port "${MTA_PORT[$name]}" 30 "$name"
    wait_port "${ADMIN_PORT[$name]}" 10 "$name admin API"
}
if has_mta sipmta; then start_sipmta sipmta ""; fi
if has_mta sipmta-fsync; then start_sipmta sipmta-fsync "$W/sync_shim.so"; fi

sipmta_queue_len() { # name
    "$SIPMTA_BIN" --config "$W/$1/sipmta.toml" queue list 2>&1 |
        awk '/^-- [0-9]+ message/ {print $2; found=1} END {if (!found) print "?"}'
}

# ------------------------------------------------------------------------------ runs
EXPECTED=0 # messages the sink must have counted so far
mkdir -p "$W/records"

count_for() { if [ "$1" -le 10240 ]; then echo "$COUNT_SMALL"; else echo "$COUNT_LARGE"; fi; }

run_one() { # kind(run|warm|perf) mta size count label
    local kind=$1 mta=$2 size=$3 count=$4 label=$5 args=()
    local json="$W/records/$kind-$label.json"
    if [ "$mta" = postfix ]; then
        if [ -n "$CG" ]; then args+=(--mta-cgroup "$CG/postfix"); fi
    else
        args+=(--thread-pid "${MTA_PID[$mta]}")
    fi
    if [ -n "$CG" ]; then
        args+=(--cgroup "mta=$CG/$mta" --cgroup "source=$CG/source" --cgroup "sink=$CG/sink"
            --cgroup "harness=$CG/harness" --source-cgroup "$CG/source" --harness-cgroup "$CG/harness")
    fi
    if [ -n "$DISK" ]; then args+=(--disk "$DISK"); fi
    python3 "$TOOL" run --label "$label" --mta "$mta" --port "${MTA_PORT[$mta]}" --size "$size" \
        --count "$count" --sessions "$SESSIONS" --rcpt "$RCPT" --stamps "$W/sink.stamps" \
        --expect-base "$EXPECTED" --json "$json" --probe-rate "$PROBE_RATE" --stall "$STALL" \
        --quiet-max "$QUIET_MAX" --quiet-wait "$QUIET_WAIT" \
        "${args[@]}" &
    RUN_PID=$! # in the background so that a signal reaches the trap at once
    wait "$RUN_PID" || fail "run $label failed (work dir $W)"
    RUN_PID=""
    EXPECTED=$((EXPECTED + count + $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["probe_messages"])' "$json")))
    # The MTA must have relayed everything, not deferred it: its queue must drain.
    local i n
    for ((i = 0; i < 200; i++)); do
        if [ "$mta" = postfix ]; then n=$(postfix_queue_files); else n=$(sipmta_queue_len "$mta"); fi
        [ "$n" = 0 ] && break
        sleep 0.05
    done
    [ "$n" = 0 ] || fail "$label: $mta queue still holds $n messages after the sink had them all"
    if [ "$mta" = postfix ] && grep -Eq 'status=(deferred|bounced)' "$W/postfix/maillog"; then
        fail "$label: Postfix deferred or bounced mail: $(grep -E 'status=(deferred|bounced)' "$W/postfix/maillog" | head -3)"
    fi
    if [ "$mta" != postfix ] && ! kill -0 "${MTA_PID[$mta]}" 2>/dev/null; then
        fail "$label: $mta died (see $W/$mta/sipmta.log)"
    fi
}

START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say "work dir $W; sink :$SINK_PORT; $(for m in $MTAS; do printf '%s :%s  ' "$m" "${MTA_PORT[$m]}"; done)"
say "sipmta: $SIPMTA_BIN ($SIPMTA_REV)"
if [ "$WARMUP" -gt 0 ]; then
    for mta in $MTAS; do
        say "warm-up: $WARMUP x 1 KiB to $mta"
        run_one warm "$mta" 1024 "$WARMUP" "warmup-$mta"
    done
fi
for size in $SIZES; do
    count=$(count_for "$size")
    for ((r = 1; r <= RUNS; r++)); do
        order=$MTAS
        if [ $((r % 2)) = 0 ]; then order=$(echo "$MTAS" | tr ' ' '\n' | tac | tr '\n' ' '); fi
        for mta in $order; do
            run_one run "$mta" "$size" "$count" "$(printf '%06d-%d-%s' "$size" "$r" "$mta")"
        done
    done
done

# ------------------------------------------------------------------------------ profile (optional)
PERF_TXT=""
if [ "$PERF" = 1 ] && has_mta sipmta; then
    say "profiling sipmta during one extra 1 KiB run (not part of the table)"
    perf record -F 999 -g -p "${MTA_PID[sipmta]}" -o "$W/perf.data" >/dev/null 2>&1 &
    PERF_PID=$!
    sleep 1
    run_one perf sipmta 1024 "$COUNT_SMALL" "perf-sipmta"
    kill -INT $PERF_PID
    wait $PERF_PID 2>/dev/null || true
    PERF_TXT=$(perf report -i "$W/perf.data" --no-children --fields overhead,dso,sym --percent-limit 0.5 \
        --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | sed 's/ *$//' | cut -c1-150 | head -45)
fi

# Every message the sink got was accounted for exactly once.
sleep 1 # a late duplicate would show up here; not part of any measurement
final=$(tail -1 "$W/sink.stamps" | awk '{print $2}')
[ "${final:-0}" = "$EXPECTED" ] || fail "smtp-sink counted ${final:-0} messages, expected $EXPECTED"
say "smtp-sink counted $final messages in all, as expected"
if has_mta postfix; then
    say "Postfix logged $(grep -c 'status=sent' "$W/postfix/maillog" || true) deliveries (status=sent), none deferred or bounced"
fi

# ------------------------------------------------------------------------------ report
mkdir -p "$RESULTS_DIR"
day=$(date -u +%Y-%m-%d)
out="$RESULTS_DIR/relay-$day.md"
[ -e "$out" ] && out="$RESULTS_DIR/relay-$day-$(date -u +%H%M).md"
fs=$(df -PT "$W" | awk 'NR==2 {print $1 " (" $2 ")"}')
mnt=$(findmnt -no OPTIONS --target "$W" 2>/dev/null || true)
wcache=$(cat "/sys/block/${DISK%%[0-9]*}/queue/write_cache" 2>/dev/null || echo unknown)
fstype=$(df -PT "$W" | awk 'NR==2 {print $2}')
journal=""
if [ "$fstype" = ext4 ] || [ "$fstype" = ext3 ]; then
    if ls -d /proc/fs/jbd2/"$DISK"-* >/dev/null 2>&1; then journal=", journal: yes"; else journal=", journal: none (no jbd2 for $DISK)"; fi
fi
{
    echo "# Relay benchmark, $START_DATE"
    echo
    echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
    echo "- spool disk: $fs under $WORK_PARENT, mount options $mnt, write cache: $wcache$journal"
    echo "- Postfix $(postconf -h mail_version): private instance, defaults + relayhost, queue files fsynced before 250"
    echo "- sipmta $SIPMTA_REV: SIPMTA_LOG=$SIPMTA_LOG, [relay] max_connections_per_destination=$SIPMTA_PER_DEST, max_connections=$SIPMTA_MAX_CONN, starttls=none$(has_mta sipmta-fsync && echo "; sipmta-fsync = same binary + bench/sync_shim.c (sync_file_range -> fdatasync)")"
    echo "- load: \`smtp-source -s $SESSIONS -m COUNT -l SIZE\` (one connection per message), COUNT = $COUNT_SMALL (<= 10 KiB) / $COUNT_LARGE (larger); $RUNS runs per MTA and size, alternating; warm-up $WARMUP; latency probe $PROBE_RATE msg/s"
    echo "- load average at start: $LOAD_START (other tenants of this machine; see the 'other load' column)"
    echo
    python3 "$TOOL" report --dir "$W/records"
    cat <<'EOF'

Columns: *delivered msg/s* = messages counted by smtp-sink (smtp-source's plus the probe's) /
time from starting smtp-source until smtp-sink counted the last one. *ingest msg/s* = smtp-source's
messages / time until its last 250. *relay latency* = time from the k-th 250 seen by a client to
the k-th message counted by smtp-sink (rank-matched: the mean is exact whatever the order, the
p99 assumes first-in first-out). *accept latency* = a probe client's time from sending "." to
reading 250, one probe transaction at a time alongside the load. *MTA CPU* = CPU time of all the
MTA's processes (cgroup) / delivered messages. *disk* = write and flush (cache flush) requests
completed by the spool's block device (/proc/diskstats) / delivered messages. *other load* = CPU
used on the machine outside the benchmark's processes, in cores, during the run.
EOF
    if [ -n "$PERF_TXT" ]; then
        echo
        echo "sipmta profile (perf record -F 999 -g, one extra 1 KiB run; self time by symbol):"
        echo
        echo '```'
        echo "$PERF_TXT"
        echo '```'
    fi
} >"$out.tmp"
mv "$out.tmp" "$out"
python3 - "$W/records" "${out%.md}.json" <<'EOF'
import json, os, sys
d = sys.argv[1]
recs = [json.load(open(os.path.join(d, n))) for n in sorted(os.listdir(d)) if n.endswith(".json")]
json.dump(recs, open(sys.argv[2], "w"), indent=1)
EOF
echo
cat "$out"
say "results: $out (raw records: ${out%.md}.json)"
