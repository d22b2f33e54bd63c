#!/usr/bin/env bash
# Fast-path benchmark (issue 6 item 6): the inline SIP fast path through Kamailio against the same
# message relayed through two Postfix hops, to the same final server, in the same run on loopback.
# See BENCHMARKS.md ("Fast path") for what is measured and how to read the results.
#
#   client --SMTP--> sipmta A --SIP INVITE--> Kamailio --> sipmta B (the final server)
#                       \______ TCP stream, FP/1, SMTP __________/  |
#   client --SMTP--> Postfix hop 1 --> Postfix hop 2 --SMTP-------> +--> B's Maildir
#                                                                    B's success DSNs --> mailbox
#
# Usage (as root: the private Postfix instances need it):
#   bench/fastpath.sh
#   SIPMTA_BIN=/path/to/sipmta SIPMTA_REV=abc1234 bench/fastpath.sh
# Knobs (environment variables, defaults in brackets):
#   RUNS [5]               rounds; in each, every path is measured once, order alternating (ABBA)
#   IDLE_COUNT [100]       (a)/(c): messages per path and round, one at a time, NOTIFY=SUCCESS
#   IDLE_WARMUP [3]        (a)/(c): unmeasured messages before each series (opens the session)
#   LOAD_COUNT [2000]      (b): messages per path and round from LOAD_CONC parallel senders
#   LOAD_CONC [20]
#   RATE_COUNT [5000]      (d): smtp-source -m RATE_COUNT -s RATE_CONC through sipmta A
#   RATE_CONC [20]
#   SIZE [1024]            message body size in bytes, every part
#   PARTS ["idle load rate"]  which measurements to run
#   IDLE_PATHS ["fast-new fast-reuse postfix relay"]  (a)/(c) paths; relay (sipmta A -> B by
#                          SMTP) is a reference: its reply time is A's own accept (spool + fsync)
#   QUIET_MAX [0.25]       before each measured series wait (up to QUIET_WAIT [60] s) until the
#   QUIET_WAIT [60]        machine's CPU use is below this many cores; recorded either way
#   STALL [30]             fail when the final server gets nothing for this many seconds
#   FP_SESSIONS [10]       sipmta A [fastpath] max_sessions_per_number (sipmta's default)
#   RELAY_PER_DEST [10]    sipmta A [relay] max_connections_per_destination (sipmta's default)
#   SIPMTA_BIN []          sipmta binary; empty: `cargo build --release -p sipmta` here
#   SIPMTA_REV []          label for a given SIPMTA_BIN (commit); default: git rev-parse
#   PORT_BASE [39300]      39300-39315: Kamailio +0, Postfix +1 +2, B +3..+6, A +7..+10,
#                          A0 (no reuse) +11..+14, the sender's mailbox +15
#   WORK_PARENT [/var/tmp] the spools live in a temp dir here
#   KEEP [0]               1: keep the temp dir (logs, spools, raw records)
#   RESULTS_DIR [bench/results]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
TOOL="$HERE/fastpath_tool.py"
KAM_CFG="$REPO/tests/tests/daemon/support/kamailio-test.cfg"

RUNS=${RUNS:-5}
IDLE_COUNT=${IDLE_COUNT:-100}
IDLE_WARMUP=${IDLE_WARMUP:-3}
LOAD_COUNT=${LOAD_COUNT:-2000}
LOAD_CONC=${LOAD_CONC:-20}
RATE_COUNT=${RATE_COUNT:-5000}
RATE_CONC=${RATE_CONC:-20}
SIZE=${SIZE:-1024}
PARTS=${PARTS:-"idle load rate"}
IDLE_PATHS=${IDLE_PATHS:-"fast-new fast-reuse postfix relay"}
QUIET_MAX=${QUIET_MAX:-0.25}
QUIET_WAIT=${QUIET_WAIT:-60}
STALL=${STALL:-30}
FP_SESSIONS=${FP_SESSIONS:-10}
RELAY_PER_DEST=${RELAY_PER_DEST:-10}
SIPMTA_BIN=${SIPMTA_BIN:-}
SIPMTA_REV=${SIPMTA_REV:-}
PORT_BASE=${PORT_BASE:-39300}
WORK_PARENT=${WORK_PARENT:-/var/tmp}
KEEP=${KEEP:-0}
RESULTS_DIR=${RESULTS_DIR:-$HERE/results}

KAM_PORT=$PORT_BASE
PF1_PORT=$((PORT_BASE + 1))
PF2_PORT=$((PORT_BASE + 2))
MBOX_PORT=$((PORT_BASE + 15))
# sipmta sites: SMTP, admin, SIP user agent, fast-path stream listener
declare -A SMTP_PORT=([b]=$((PORT_BASE + 3)) [a]=$((PORT_BASE + 7)) [a0]=$((PORT_BASE + 11)))
declare -A SIPMTA_PID=()
TEL_B="050-2222-2222"
FAST_RCPT="bob@b.example"      # routed to B's number: the fast path
RELAY_RCPT="bob@b-relay.example" # no route: sipmta A relays it to B by SMTP
PF_RCPT="bob@b.example"        # Postfix relays everything to B

say() { printf '[fastpath.sh] %s\n' "$*" >&2; }
fail() { printf '[fastpath.sh] FAIL: %s\n' "$*" >&2; exit 1; }
# shellcheck source=lib.sh
. "$HERE/lib.sh"
has_part() { [[ " $PARTS " == *" $1 "* ]]; }

# ------------------------------------------------------------------------------ prerequisites
[ "$(id -u)" = 0 ] || fail "run as root (the private Postfix instances need it)"
missing=()
for c in smtp-source postfix postconf; do command -v "$c" >/dev/null || missing+=(postfix); done
command -v kamailio >/dev/null || [ -x /usr/sbin/kamailio ] || missing+=(kamailio)
command -v python3 >/dev/null || missing+=(python3)
command -v ss >/dev/null || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
    pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
    say "installing missing Debian packages: $pkgs(the system-wide Postfix is not used)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y $pkgs >&2
fi
KAMAILIO=$(command -v kamailio || echo /usr/sbin/kamailio)
[ -f "$KAM_CFG" ] || fail "no Kamailio config at $KAM_CFG"

for p in $(seq "$PORT_BASE" $((PORT_BASE + 15))); do
    port_free "$p" || fail "127.0.0.1:$p is in use (set PORT_BASE)"
done

# ------------------------------------------------------------------------------ work dir, teardown
mkdir -p "$WORK_PARENT"
W=$(mktemp -d "$WORK_PARENT/sipmta-fastpath-bench.XXXXXX")
chmod 755 "$W" # Postfix's unprivileged daemons must reach their queues below it
CG=""
KAM_PID="" MBOX_PID="" RUN_PID=""
PF_STARTED=()


cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [ -n "$RUN_PID" ]; then
        kill -TERM "$RUN_PID" 2>/dev/null
        wait "$RUN_PID" 2>/dev/null
    fi
    for p in "${SIPMTA_PID[@]}"; do stop_pid "$p"; done
    for inst in "${PF_STARTED[@]}"; do
        local mpid
        mpid=$(head -1 "$W/$inst/queue/pid/master.pid" 2>/dev/null | tr -d ' ')
        postfix -c "$W/$inst/etc" stop >/dev/null 2>&1
        for _ in $(seq 100); do [ -n "$mpid" ] && kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
        [ -n "$mpid" ] && kill -0 "$mpid" 2>/dev/null && postfix -c "$W/$inst/etc" abort >/dev/null 2>&1
    done
    [ -n "$KAM_PID" ] && stop_pid "$KAM_PID"
    [ -n "$MBOX_PID" ] && stop_pid "$MBOX_PID"
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
        say "work dir kept: $W (logs: */sipmta.log, postfix*/maillog, kamailio.log, mailbox.jsonl)"
    else
        rm -rf "$W"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# CPU accounting per component: a cgroup each (v1 cpuacct, else v2), when available.
COMPONENTS="postfix sipmta-a sipmta-a0 sipmta-b kamailio clients harness"
for base in /sys/fs/cgroup/cpuacct /sys/fs/cgroup/unified /sys/fs/cgroup; do
    if [ -w "$base" ] && { [ -f "$base/cpuacct.usage" ] || [ -f "$base/cgroup.procs" ]; }; then
        if mkdir "$base/sipmta-fastpath-bench.$$" 2>/dev/null; then
            CG="$base/sipmta-fastpath-bench.$$"
            for g in $COMPONENTS; do mkdir "$CG/$g"; done
            break
        fi
    fi
done
[ -n "$CG" ] || say "no writable cgroup hierarchy: CPU per component will be n/a"
in_cg() { # group command...: exec the command inside the cgroup (call in a subshell)
    local g=$1
    shift
    if [ -n "$CG" ]; then echo $BASHPID >"$CG/$g/cgroup.procs"; fi
    exec "$@"
}
if [ -n "$CG" ]; then echo $$ >"$CG/harness/cgroup.procs"; fi

# ------------------------------------------------------------------------------ sipmta binary
build_sipmta "$REPO"

# ------------------------------------------------------------------------------ the sender's mailbox
# B sends its success DSNs for mail from a.example here; every arrival is timestamped.
: >"$W/mailbox.jsonl"
(in_cg harness python3 "$TOOL" mailbox --port "$MBOX_PORT" --out "$W/mailbox.jsonl" 2>"$W/mailbox.err") &
MBOX_PID=$!
wait_port "$MBOX_PORT" 10 "the mailbox" "$MBOX_PID"

# ------------------------------------------------------------------------------ Kamailio
# The registrar/proxy the fast-path tests use (tests/tests/daemon/support/kamailio-test.cfg):
# in-memory location, stateful proxy, Record-Route; no auth. Its own log level (debug=2).
mkdir -p "$W/kamailio"
(in_cg kamailio "$KAMAILIO" -DD -E -f "$KAM_CFG" -A "SIP_PORT=$KAM_PORT" -Y "$W/kamailio" -w "$W/kamailio" \
    -P "$W/kamailio/kamailio.pid" -m 64 -M 8 </dev/null >"$W/kamailio.log" 2>&1) &
KAM_PID=$!
wait_port "$KAM_PORT" 20 Kamailio "$KAM_PID"
for _ in $(seq 200); do [ -n "$(ss -Hlnu "sport = :$KAM_PORT")" ] && break; sleep 0.05; done

# ------------------------------------------------------------------------------ sipmta sites
# B: the final server for every path. Local domains b.example (the fast path's and Postfix's
# recipients) and b-relay.example (sipmta A's relay path); Maildir delivery; its success DSNs
# for a.example go to the mailbox. A: the sending site, session reuse on (default 10 s idle).
# A0: the same with session_idle = "0s", a new SIP session for every message.
start_sipmta() { # name smtp_port extra_top extra
    local name=$1 port=$2 dir="$W/sipmta-$1"
    mkdir -p "$dir"
    cat >"$dir/sipmta.toml" <<EOF
hostname = "$1.bench.invalid"
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

[log]
format = "json"

[limits]
max_sessions = 500
max_sessions_per_client = 500

[registrar]
enabled = false

$4
EOF
    "$SIPMTA_BIN" check-config "$dir/sipmta.toml" >/dev/null || fail "sipmta check-config $dir/sipmta.toml failed"
    (
        # B logs "message accepted" for every message (the final server's 250). A and A0 log
        # one line per new fast-path session ("fast-path transaction done", none for a reused
        # one), which the tool counts to check that reuse happens; nothing else below warn.
        if [ "$name" = b ]; then export SIPMTA_LOG="warn,sipmta::smtp=info"; else export SIPMTA_LOG="warn,sipmta::fastpath::send=info"; fi
        in_cg "sipmta-$name" "$SIPMTA_BIN" serve --config "$dir/sipmta.toml" 2>"$dir/sipmta.log"
    ) &
    SIPMTA_PID[$name]=$!
    wait_port "$port" 30 "sipmta $name" "${SIPMTA_PID[$name]}"
    wait_port "$((port + 1))" 10 "sipmta $name admin API" "${SIPMTA_PID[$name]}"
}
fastpath_conf() { # sip_port extra...
    cat <<EOF
[fastpath]
enabled = true
sip_listen = "127.0.0.1:$1"
stream_listen = "127.0.0.1:$(($1 + 1))"
proxy = "127.0.0.1:$KAM_PORT"
domain = "sip.example"
$2
EOF
}
B_PORT=${SMTP_PORT[b]}
start_sipmta b "$B_PORT" 'local_domains = ["b.example", "b-relay.example"]' "$(fastpath_conf $((B_PORT + 2)) "
[[fastpath.numbers]]
number = \"$TEL_B\"")

[relay]
starttls = \"none\"
nameservers = [\"127.0.0.1:9\"]

[relay.transport]
\"a.example\" = \"[127.0.0.1]:$MBOX_PORT\""
for a in a a0; do
    idle='session_idle = "10s"'
    [ "$a" = a0 ] && idle='session_idle = "0s"'
    p=${SMTP_PORT[$a]}
    start_sipmta "$a" "$p" 'trusted_networks = ["127.0.0.0/8"]' "$(fastpath_conf $((p + 2)) "$idle
max_sessions_per_number = $FP_SESSIONS")

[relay]
max_connections_per_destination = $RELAY_PER_DEST
nameservers = [\"127.0.0.1:9\"]

[relay.transport]
\"b.example\" = \"[127.0.0.1]:$B_PORT\"
\"b-relay.example\" = \"[127.0.0.1]:$B_PORT\""
    "$SIPMTA_BIN" --config "$W/sipmta-$a/sipmta.toml" route add b.example "$TEL_B" >/dev/null ||
        fail "sipmta $a: route add b.example $TEL_B failed"
done

# ------------------------------------------------------------------------------ Postfix, two hops
# Two private instances (own config, queue and data directories; no chroot, no local delivery),
# Postfix's defaults otherwise: hop 1 relays everything to hop 2, hop 2 to B's SMTP listener.
# Both pass NOTIFY/ENVID/ORCPT on (the next hop speaks DSN), so B sends the success DSN.
start_postfix() { # instance port relayhost_port
    local inst=$1 d="$W/$1"
    mkdir -p "$d/etc" "$d/queue" "$d/data"
    chown postfix "$d/data"
    cat >"$d/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $d/queue
data_directory = $d/data
mail_owner = postfix
setgid_group = postdrop
myhostname = $inst.bench.invalid
mydomain = bench.invalid
myorigin = \$myhostname
mydestination =
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost = [127.0.0.1]:$3
maillog_file = $d/maillog
biff = no
smtpd_peername_lookup = no
EOF
    cat >"$d/etc/master.cf" <<EOF
127.0.0.1:$2 inet n - n - - smtpd
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
    postfix -c "$d/etc" check >&2 || fail "postfix check failed for $inst"
    PF_STARTED+=("$inst")
    (in_cg postfix postfix -c "$d/etc" start >&2) || fail "postfix $inst did not start (see $d/maillog)"
    wait_port "$2" 20 "Postfix $inst"
}
start_postfix postfix2 "$PF2_PORT" "$B_PORT"
start_postfix postfix1 "$PF1_PORT" "$PF2_PORT"

# ------------------------------------------------------------------------------ runs
mkdir -p "$W/records"
COMMON=(--size "$SIZE" --final-log "$W/sipmta-b/sipmta.log" --quiet-max "$QUIET_MAX" --quiet-wait "$QUIET_WAIT"
    --stall "$STALL" --sipmta-bin "$SIPMTA_BIN" --postfix-queue "$W/postfix1/queue" --postfix-queue "$W/postfix2/queue")
for s in a a0 b; do COMMON+=(--sipmta-config "$W/sipmta-$s/sipmta.toml"); done
# Every process of the benchmark runs below $CG: the rest of the machine's CPU use is other load.
if [ -n "$CG" ]; then COMMON+=(--bench-cgroup "$CG"); fi
CPU=()
if [ -n "$CG" ]; then for g in $COMPONENTS; do CPU+=(--cpu "$g=cg:$CG/$g"); done; fi

port_of() { case $1 in fast-new) echo "${SMTP_PORT[a0]}" ;; fast-reuse | fast | relay) echo "${SMTP_PORT[a]}" ;; postfix) echo "$PF1_PORT" ;; esac; }
rcpt_of() { case $1 in fast-new | fast-reuse | fast) echo "$FAST_RCPT" ;; relay) echo "$RELAY_RCPT" ;; postfix) echo "$PF_RCPT" ;; esac; }

measure() { # part path run
    local part=$1 path=$2 r=$3 label="$1.$2.r$3" args=()
    case $part in
        idle) args=(--count "$IDLE_COUNT" --warmup "$IDLE_WARMUP" --mailbox "$W/mailbox.jsonl") ;;
        load) args=(--count "$LOAD_COUNT" --conc "$LOAD_CONC" "${CPU[@]}") ;;
        rate) args=(--count "$RATE_COUNT" --conc "$RATE_CONC" "${CPU[@]}")
            if [ -n "$CG" ]; then args+=(--source-cgroup "$CG/clients"); fi ;;
    esac
    case $path in
        fast-new) args+=(--sender-log "$W/sipmta-a0/sipmta.log") ;;
        fast-reuse | fast) args+=(--sender-log "$W/sipmta-a/sipmta.log") ;;
    esac
    (in_cg clients python3 "$TOOL" "$part" --path "$path" --label "$label" --run "$r" --port "$(port_of "$path")" \
        --rcpt "$(rcpt_of "$path")" --json "$W/records/$part-$path-$r.json" "${COMMON[@]}" "${args[@]}") &
    RUN_PID=$! # in the background, so that a signal reaches the trap at once
    wait "$RUN_PID" || fail "$label failed (work dir $W)"
    RUN_PID=""
    for s in "${!SIPMTA_PID[@]}"; do
        kill -0 "${SIPMTA_PID[$s]}" 2>/dev/null || fail "sipmta $s died (see $W/sipmta-$s/sipmta.log)"
    done
}

# Each path once through, unmeasured: sessions, Postfix's processes, B's relay to the mailbox.
warmup() {
    say "warm-up: every path once (the fast path must answer with a verdict, not 'queued')"
    local path out
    for path in fast-new fast-reuse postfix relay; do
        out=$(python3 "$TOOL" idle --path "$path" --label "warm.$path" --port "$(port_of "$path")" \
            --rcpt "$(rcpt_of "$path")" --json "$W/warm-$path.json" --count 1 --warmup 0 \
            --mailbox "$W/mailbox.jsonl" --quiet-wait 0 "${COMMON[@]}" 2>&1) || fail "warm-up $path: $out"
        if [[ $path == fast-* ]] && ! grep -q '"reply_kind": "verdict"' "$W/warm-$path.json"; then
            fail "warm-up $path: no inline verdict: $(grep -o '"reply": "[^"]*"' "$W/warm-$path.json")"
        fi
    done
}

START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say "work dir $W; Kamailio :$KAM_PORT; Postfix :$PF1_PORT -> :$PF2_PORT; sipmta A :${SMTP_PORT[a]}, A0 :${SMTP_PORT[a0]}, B :$B_PORT; mailbox :$MBOX_PORT"
say "sipmta: $SIPMTA_BIN ($SIPMTA_REV)"
warmup

abba() { # run list...: the list forwards on odd runs, backwards on even ones
    local r=$1
    shift
    if [ $((r % 2)) = 1 ]; then echo "$@"; else echo "$@" | tr ' ' '\n' | tac | tr '\n' ' '; fi
}
for ((r = 1; r <= RUNS; r++)); do
    if has_part idle; then for p in $(abba "$r" $IDLE_PATHS); do measure idle "$p" "$r"; done; fi
    if has_part load; then for p in $(abba "$r" fast-reuse postfix); do measure load "$p" "$r"; done; fi
    if has_part rate; then for p in $(abba "$r" fast relay); do measure rate "$p" "$r"; done; fi
done

# ------------------------------------------------------------------------------ checks
# Every message reached B exactly once (the tool fails on a duplicate sender within a run) and
# B's Maildirs hold what the runs sent; Postfix deferred and bounced nothing.
expected=0
for f in "$W"/records/*.json "$W"/warm-*.json; do
    expected=$((expected + $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["count"] + r.get("warmup", 0))' "$f")))
done
got=$(find "$W/sipmta-b/data/maildir" -path '*/new/*' -type f | wc -l)
[ "$got" = "$expected" ] || fail "B's Maildirs hold $got messages, expected $expected"
if grep -Eqh 'status=(deferred|bounced)' "$W"/postfix*/maillog; then
    fail "Postfix deferred or bounced mail: $(grep -Eh 'status=(deferred|bounced)' "$W"/postfix*/maillog | head -3)"
fi
say "B's Maildirs hold $got messages, as expected; Postfix deferred and bounced nothing"
T_END=$(date +%s)

# ------------------------------------------------------------------------------ report
mkdir -p "$RESULTS_DIR"
day=$(date -u +%Y-%m-%d)
rev=$(echo "$SIPMTA_REV" | awk '{print $1}')
out="$RESULTS_DIR/fastpath-$day-$rev.md"
[ -e "$out" ] && out="$RESULTS_DIR/fastpath-$day-$rev-$(date -u +%H%M).md"
{
    echo "# Fast-path benchmark, $START_DATE"
    echo
    echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
    echo "- sipmta $SIPMTA_REV; Postfix $(postconf -h mail_version) (two private instances, defaults + relayhost); $("$KAMAILIO" -v 2>/dev/null | head -1)"
    echo "- $RUNS rounds, paths alternating (ABBA); $SIZE-byte bodies; idle $IDLE_COUNT messages per path and round (+$IDLE_WARMUP warm-up); load $LOAD_COUNT from $LOAD_CONC senders; rate smtp-source -s $RATE_CONC -m $RATE_COUNT"
    echo "- sipmta A: [fastpath] max_sessions_per_number = $FP_SESSIONS, session_idle 10s (A0: 0s), inline on (budget 5s); [relay] max_connections_per_destination = $RELAY_PER_DEST, STARTTLS opportunistic (as the fast path)"
    echo "- load average at start: $LOAD_START; the whole run took $(((T_END - T_START) / 60)) min $(((T_END - T_START) % 60)) s"
    echo
    python3 "$TOOL" report --dir "$W/records"
} >"$out.tmp"
mv "$out.tmp" "$out"
python3 "$TOOL" compact --dir "$W/records" --out "${out%.md}.json"
echo
cat "$out"
say "results: $out (raw records: ${out%.md}.json)"
