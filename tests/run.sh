#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this and nothing else).
#
# 1. Installs the Debian packages the black-box tests talk to, when they are missing
#    (swaks as the SMTP client; unshare/ip for the private network namespace in which the
#    README's `sipmta serve` is tested on its fixed default ports; dnsmasq as the DNS server
#    that serves MX records on loopback; postfix for smtp-sink, the remote server relay tests
#    deliver to; kamailio as the SIP registrar/proxy and sipp as a foreign SIP user agent;
#    openssl for the tests' TLS certificates and DKIM keys; python3 for one test's helper).
# 2. Checks formatting (rustfmt.toml) and lints with clippy (warnings are errors).
# 3. Runs every test level: unit and parser tests, session transcripts, in-process socket
#    tests, and black-box tests of the built daemon (tests/tests/daemon).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v swaks >/dev/null 2>&1 || need+=(swaks)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v dnsmasq >/dev/null 2>&1 || need+=(dnsmasq-base)
command -v smtp-sink >/dev/null 2>&1 || need+=(postfix)
command -v kamailio >/dev/null 2>&1 || need+=(kamailio)
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# deploy/follow-install.sh: an independent DKIM verifier, and the guide's curl and jq.
command -v dkimverify >/dev/null 2>&1 || need+=(python3-dkim)
command -v jq >/dev/null 2>&1 || need+=(jq)
command -v curl >/dev/null 2>&1 || need+=(curl)
if ((${#need[@]})); then
    echo "tests/run.sh: installing ${need[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
fi

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --locked -p sipmta
cargo test --workspace --locked
