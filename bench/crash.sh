#!/usr/bin/env bash
# Crash safety at scale (issue 8 item 1): the two tests in tests/tests/daemon/crash_load.rs
# with 10,000 messages each against a release build of sipmta.
#   1. 8 parallel clients submit to site A, which relays half to smtp-sink and sends half by
#      fast path to site B (A is B's registrar); A is killed with SIGKILL KILLS times at random
#      points of the run and restarted.
#   2. The same clients, everything by fast path; B, the fast-path peer, is killed KILLS times
#      while A's transactions to it are in flight (mid-DATA).
# Each test fails on a single lost message (a 250 that never reached a destination). The
# summary lines (messages, kills, lost, duplicates by kind) go to bench/results/crash-DATE.md.
#
# Usage: bench/crash.sh            Knobs: MESSAGES [10000], KILLS [5], ROUNDS [1] (each round
#        runs both tests once), SIPMTA_BIN [build --release], RESULTS_DIR [bench/results]
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
MESSAGES=${MESSAGES:-10000}
KILLS=${KILLS:-5}
ROUNDS=${ROUNDS:-1}
RESULTS_DIR=${RESULTS_DIR:-$HERE/results}
say() { printf '[crash.sh] %s\n' "$*" >&2; }
fail() { printf '[crash.sh] FAIL: %s\n' "$*" >&2; exit 1; }
SIPMTA_BIN=${SIPMTA_BIN:-} SIPMTA_REV=${SIPMTA_REV:-}
# shellcheck source=lib.sh
. "$HERE/lib.sh"

command -v smtp-sink >/dev/null || { say "installing postfix (smtp-sink)"; DEBIAN_FRONTEND=noninteractive apt-get install -y postfix >&2; }
cd "$REPO"
build_sipmta "$REPO"
export SIPMTA_BIN CRASH_MESSAGES=$MESSAGES CRASH_KILLS=$KILLS
REV=$(git rev-parse --short HEAD)
LOG=$(mktemp)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
for r in $(seq "$ROUNDS"); do
    say "round $r of $ROUNDS: $MESSAGES messages, $KILLS kills per test"
    # One test at a time: the two would compete for the machine's cores.
    cargo test --locked -p sipmta-tests --test daemon -- crash_load --nocapture --test-threads=1 2>&1 | tee -a "$LOG" | grep -E '^crash|^test ' >&2
done
mkdir -p "$RESULTS_DIR"
OUT="$RESULTS_DIR/crash-$(date -u +%Y%m%d-%H%M%S).md"
{
    echo "# Crash safety: $MESSAGES messages per test, $KILLS SIGKILLs"
    echo
    echo "sipmta $REV (release), $STARTED, $(nproc) cores; command: \`MESSAGES=$MESSAGES KILLS=$KILLS ROUNDS=$ROUNDS bench/crash.sh\`"
    echo
    echo '```'
    grep -E '^crash summary|^crash: duplicates by route|^test crash_load' "$LOG"
    echo '```'
} >"$OUT"
rm -f "$LOG"
say "results in $OUT"
grep -q 'test result: FAILED' "$OUT" && exit 1
! grep -q '\.\.\. FAILED' "$OUT"
