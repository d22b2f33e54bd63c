#!/usr/bin/env bash
# Run every fuzz target for a while (default 60 s each; FUZZ_SECONDS=3600 for a long run).
# Needs cargo-fuzz (`cargo install cargo-fuzz`); the stable toolchain accepts the sanitizer
# flags through RUSTC_BOOTSTRAP=1. Corpora live in fuzz/corpus/<target> and grow as it runs;
# crashes land in fuzz/artifacts/<target>.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-60}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(data_decoder smtp_command smtp_session config dsn_parse mdn rules_scan sdp fp1)
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "== $t for ${seconds}s"
    cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20
done
