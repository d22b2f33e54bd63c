#!/usr/bin/env bash
# Run every fuzz target for a while (default 60 s each; FUZZ_SECONDS=3600 for a long run).
# Needs cargo-fuzz (`cargo install cargo-fuzz`); the stable toolchain accepts the sanitizer
# flags through RUSTC_BOOTSTRAP=1. Corpora live in fuzz/corpus/<target> and grow as it runs;
# crashes land in fuzz/artifacts/<target>. Each target's log goes to $FUZZ_LOGS (default: a
# new temp dir); the end prints one summary line per target, for RELIABILITY.md. A crash does
# not stop the other targets; the exit status is 1 if any target crashed.
set -uo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-60}"
logs="${FUZZ_LOGS:-$(mktemp -d)}"
mkdir -p "$logs"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(data_decoder smtp_command smtp_session config dsn_parse mdn rules_scan sdp fp1 sip learn_claim)
export RUSTC_BOOTSTRAP=1
summary=()
status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    log="$logs/$t.log"
    echo "== $t for ${seconds}s (log: $log)"
    started=$(date +%s)
    if cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 2>&1 | tee "$log"; then
        crash=no
    else
        crash=yes
        status=1
    fi
    # libFuzzer's own count and time; the wall clock (with the build) if it did not finish.
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$')
    secs=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 | awk '{print $5}')
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
    files=$(find "corpus/$t" -type f | wc -l)
    summary+=("$t seconds=${secs:-$(($(date +%s) - started))} runs=${runs:-?} cov=${cov:-?} corpus=$files crash=$crash")
done
echo "== summary ($(date -u +%F), FUZZ_SECONDS=$seconds)"
printf '%s\n' "${summary[@]}"
exit "$status"
