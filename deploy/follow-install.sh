#!/usr/bin/env bash
# Follows deploy/INSTALL.md on a throwaway copy of this machine and checks that the result is a
# running, signed, observable site (issue 9's "done when"). Run as root:
#
#     deploy/follow-install.sh path/to/sipmta
#
# The machine is made fresh with namespaces, so nothing outside is changed:
# - /etc, /usr/local, /usr/sbin and /var are overlays whose writes go to a temporary
#   directory (the `sipmta` user, /etc/sipmta, /usr/local/bin/sipmta, /usr/sbin/sendmail);
# - the network is a namespace of its own: mail.example.com at the guide's 203.0.113.10 and
#   2001:db8::10 on a veth link to a second namespace, "the internet", where the other site's
#   MX, mx.example.net at 198.51.100.25, is Postfix's smtp-sink. dnsmasq on 127.0.0.53, the
#   nameserver the example config names, serves the records of step 9.
#
# Each command the guide gives is run word for word, after checking that INSTALL.md still says
# it (`doc`, `doc_block`); what the guide leaves to the operator (editing the config, getting a
# certificate, systemd) is done here and says so. There is no systemd in the namespace: the
# unit's ExecStart runs as its User= with its capabilities, umask, file limit and a read-only
# system but for the state directory (ProtectSystem=strict, PrivateTmp, ProtectHome). The
# seccomp settings (SystemCallFilter, RestrictAddressFamilies) are checked by
# `systemd-analyze verify` in tests/tests/daemon/deploy.rs, not applied here.
#
# Needs: unshare, nsenter, setpriv, runuser, useradd (util-linux, passwd), dnsmasq, smtp-sink (postfix),
# swaks, openssl, curl, jq, dkimverify (python3-dkim, an independent DKIM verifier).
set -euo pipefail
[ -n "${FOLLOW_TRACE:-}" ] && set -x

repo=$(cd "$(dirname "$0")/.." && pwd)
guide=$repo/deploy/INSTALL.md

if [ -z "${FOLLOW_INSIDE:-}" ]; then
    [ $# -eq 1 ] && [ -x "$1" ] || { echo "usage: $0 path/to/sipmta (run as root)" >&2; exit 2; }
    [ "$(id -u)" -eq 0 ] || { echo "$0: must run as root (it makes namespaces and a user)" >&2; exit 2; }
    for tool in unshare nsenter setpriv runuser useradd dnsmasq smtp-sink swaks openssl curl jq dkimverify; do
        command -v "$tool" >/dev/null || { echo "$0: $tool is not installed (tests/run.sh installs it)" >&2; exit 2; }
    done
    work=$(mktemp -d /tmp/follow-install.XXXXXX)
    [ -n "${FOLLOW_KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
    # A PID namespace too: every process started here ends with the script.
    FOLLOW_INSIDE=1 FOLLOW_WORK=$work unshare --mount --net --pid --fork --mount-proc "$0" "$(realpath "$1")"
    exit
fi

bin=$1
work=$FOLLOW_WORK
step() { printf '\n=== INSTALL.md %s\n' "$*"; }
fail() {
    if [ -s "${log:-}" ]; then printf -- '--- the last lines of the daemon log:\n' >&2; tail -n 30 "$log" >&2; fi
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}

# Run a command line the guide gives, word for word: it must be a line of INSTALL.md.
doc() {
    grep -qxF -- "$1" "$guide" || fail "INSTALL.md no longer says: $1"
    printf '$ %s\n' "$1" >&2
    eval "$1"
}

# A line the guide gives that is not run here, with the reason.
doc_says() {
    grep -qxF -- "$1" "$guide" || fail "INSTALL.md no longer says: $1"
    printf '(not run: %s) %s\n' "$2" "$1" >&2
}

# The guide's lines from the one equal to $1 to the next one equal to $2, both included.
block() {
    awk -v first="$1" -v last="$2" '$0 == first { on = 1 } on { print } on && $0 == last && NR > start { exit } $0 == first { start = NR }' "$guide"
}

# Run such a block (a here-document, a command continued over lines) as the guide gives it.
doc_block() {
    local text
    text=$(block "$1" "$2")
    [ -n "$text" ] || fail "INSTALL.md no longer has the block starting: $1"
    printf '$ %s\n' "$text" >&2
    eval "$text${3:+ $3}"
}

wait_for() { # what, command...
    local what=$1 i
    shift
    for i in $(seq 1 200); do
        if "$@"; then return 0; fi
        sleep 0.1
    done
    fail "timed out waiting for $what"
}

# --- A fresh machine: overlays, a private network, the guide's addresses.
mount --make-rprivate /
for dir in /etc /usr/local /usr/sbin /var; do
    name=${dir//\//_}
    mkdir -p "$work/$name.upper" "$work/$name.work"
    mount -t overlay overlay -o "lowerdir=$dir,upperdir=$work/$name.upper,workdir=$work/$name.work" "$dir"
done
id sipmta >/dev/null 2>&1 && fail "a sipmta user exists already: not a fresh machine"
# The server's own network, and "the internet" beyond its link: another namespace (held by a
# sleeping process) where the other site's MX lives.
ip link set lo up
unshare --net sleep infinity &
world=$!
in_world() { nsenter --net="/proc/$world/ns/net" "$@"; }
ip link add eth0 type veth peer name uplink
ip link set uplink netns "$world"
ip addr add 203.0.113.10/24 dev eth0
ip -6 addr add 2001:db8::10/64 dev eth0 nodad
ip link set eth0 up
ip route add default via 203.0.113.1
in_world ip link set lo up
in_world ip addr add 203.0.113.1/24 dev uplink
in_world ip addr add 198.51.100.25/32 dev lo
in_world ip link set uplink up
printf 'nameserver 127.0.0.53\n' > /etc/resolv.conf
printf '203.0.113.10 mail.example.com\n' >> /etc/hosts
mkdir -p "$work/src/target/release"
cp "$bin" "$work/src/target/release/sipmta"
cp -r "$repo/deploy" "$work/src/deploy"
cd "$work/src"

step "2. Install the binary"
doc "install -m 0755 target/release/sipmta /usr/local/bin/sipmta"
doc "sipmta --version"

step "3. User and directories"
doc "useradd --system --user-group --home-dir /var/lib/sipmta --no-create-home --shell /usr/sbin/nologin sipmta"
doc "install -d -m 0755 /etc/sipmta"
doc "install -d -o root -g sipmta -m 0750 /etc/sipmta/tls /etc/sipmta/dkim"
doc "install -d -o sipmta -g sipmta -m 0750 /var/lib/sipmta"

step "4. Configuration"
doc "install -m 0644 deploy/sipmta.toml /etc/sipmta/sipmta.toml"
# The operator's edits from the table "Change these first": no smarthost, transport or TLS
# policy examples, the fast path off until step 10, Kamailio as the registrar.
python3 - /etc/sipmta/sipmta.toml <<'EOF'
import re, sys
path = sys.argv[1]
lines, out, skip, section = open(path).read().split("\n"), [], False, ""
for line in lines:
    header = re.match(r"^\[\[?([^\]]+)\]\]?\s*(#.*)?$", line)
    if header:
        section = header.group(1)
        skip = section in ("relay.smarthosts", "relay.transport", "fastpath.numbers", "registrar.users")
    if skip or line.startswith("tls_policy ="):
        continue
    if section in ("fastpath", "registrar") and line.startswith("enabled = true"):
        line = "enabled = false"
    out.append(line)
open(path, "w").write("\n".join(out))
EOF
doc "install -o root -g sipmta -m 0640 /dev/null /etc/sipmta/sip.password"
doc "echo 'the SIP password' > /etc/sipmta/sip.password       # only the first line is read"

step "5. TLS certificate (a self-signed one where certbot would put its files)"
live=/etc/letsencrypt/live/mail.example.com
mkdir -p "$live" /etc/letsencrypt/renewal-hooks/deploy
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=mail.example.com \
    -keyout "$live/privkey.pem" -out "$live/fullchain.pem" 2>/dev/null
block '#!/bin/sh' 'if systemctl is-active --quiet sipmta; then systemctl reload sipmta; fi' > /etc/letsencrypt/renewal-hooks/deploy/sipmta
[ -s /etc/letsencrypt/renewal-hooks/deploy/sipmta ] || fail "INSTALL.md no longer has the deploy hook"
doc "chmod 0755 /etc/letsencrypt/renewal-hooks/deploy/sipmta"
doc "RENEWED_LINEAGE=/etc/letsencrypt/live/mail.example.com /etc/letsencrypt/renewal-hooks/deploy/sipmta"
[ "$(stat -c '%U:%G %a' /etc/sipmta/tls/privkey.pem)" = "root:sipmta 640" ] || fail "the hook installed the key as $(stat -c '%U:%G %a' /etc/sipmta/tls/privkey.pem)"

step "6. DKIM keys"
doc "cd /etc/sipmta/dkim"
doc "sipmta dkim keygen example.com s2026" | tee "$work/keygen.txt"
doc "sipmta dkim keygen example.com e2026 --algorithm ed25519"
doc "chgrp sipmta example.com.s2026.pem example.com.e2026.pem"
doc "chmod 0640 example.com.s2026.pem example.com.e2026.pem"
cd "$work/src"
record() { # the TXT strings `dkim record` prints, as dnsmasq takes them: separated by commas
    sipmta dkim record --key "/etc/sipmta/dkim/example.com.$1.pem" example.com "$1" \
        | sed -n 's/^.* IN TXT //p' | sed -e 's/" "/,/g' -e 's/"//g'
}
grep -q "s2026._domainkey.example.com. IN TXT" "$work/keygen.txt" || fail "keygen printed no DNS record"
doc "runuser -u sipmta -- sipmta check-config /etc/sipmta/sipmta.toml"

step "9. DNS records (served by dnsmasq on 127.0.0.53, the example's nameserver)"
dnsmasq --keep-in-foreground --conf-file=/dev/null --pid-file= --bind-interfaces --listen-address=127.0.0.53 \
    --no-resolv --no-hosts --log-facility=- \
    --mx-host=example.com,mail.example.com,10 --host-record=mail.example.com,203.0.113.10,2001:db8::10 \
    --txt-record=example.com,"v=spf1 mx -all" --txt-record=mail.example.com,"v=spf1 a -all" \
    --txt-record=s2026._domainkey.example.com,"$(record s2026)" \
    --txt-record=e2026._domainkey.example.com,"$(record e2026)" \
    --txt-record=_dmarc.example.com,"v=DMARC1; p=none; rua=mailto:postmaster@example.com" \
    --mx-host=example.net,mx.example.net,10 --host-record=mx.example.net,198.51.100.25 \
    > "$work/dnsmasq.log" 2>&1 &
# The other site's mail server; it writes its dumps as nobody.
chmod 0755 "$work"
mkdir -m 0777 "$work/sink"
in_world smtp-sink -u nobody -d "$work/sink/msg." 198.51.100.25:25 64 >/dev/null 2>&1 &
wait_for "the DNS server" sh -c 'getent ahostsv4 mx.example.net | grep -q 198.51.100.25'

step "8. Start it (as the unit would: systemd is not running here)"
doc "install -m 0644 deploy/sipmta.service /etc/systemd/system/sipmta.service"
unit=/etc/systemd/system/sipmta.service
key() { sed -n "s/^$1=//p" "$unit"; }
[ "$(key Type)" = exec ] && [ "$(key StateDirectory)" = sipmta ] || fail "the unit changed: Type or StateDirectory"
[ "$(key CapabilityBoundingSet)" = CAP_NET_BIND_SERVICE ] && [ "$(key AmbientCapabilities)" = CAP_NET_BIND_SERVICE ] \
    || fail "the unit's capabilities changed"
[ "$(key ProtectSystem)" = strict ] && [ "$(key PrivateTmp)" = yes ] && [ "$(key ProtectHome)" = yes ] \
    || fail "the unit's file system protection changed"
read -r -a exec_start <<< "$(key ExecStart)"
log=$work/serve.log
# ProtectSystem=strict, PrivateTmp, ProtectHome: a mount namespace where all is read-only but
# the state directory; then User=, Group=, the capabilities, UMask=, LimitNOFILE=,
# NoNewPrivileges= and an empty environment, from /.
unshare --mount -- bash -c '
    set -e
    mount --make-rprivate /
    mount --bind /var/lib/sipmta /var/lib/sipmta
    for m in / /etc /usr/local /usr/sbin /var; do mount -o remount,bind,ro "$m"; done
    mount -t tmpfs -o mode=1777 tmpfs /tmp
    mount -t tmpfs -o ro,mode=0755 tmpfs /root
    mount -t tmpfs -o ro,mode=0755 tmpfs /home
    umask "$1"; cd /
    # A sandboxed test machine may hold the hard limit below the unit'"'"'s; then that is used.
    ulimit -n "$2" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    exec setpriv --reuid="$3" --regid="$4" --init-groups --no-new-privs \
        --bounding-set=-all,+net_bind_service --inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service \
        env -i "${@:5}"' sandbox "$(key UMask)" "$(key LimitNOFILE)" "$(key User)" "$(key Group)" "${exec_start[@]}" \
    > "$log" 2>&1 &
mainpid=$!
ready() { grep -qs '"message":"ready"' "$log" || { kill -0 "$mainpid" 2>/dev/null || { cat "$log"; fail "sipmta exited at start"; }; false; }; }
wait_for "sipmta to be ready" ready
[ "$(stat -c %U "/proc/$mainpid")" = sipmta ] || fail "the daemon runs as $(stat -c %U "/proc/$mainpid")"
grep -q "smtp listener on 0.0.0.0:25" "$log" && grep -q "smtp listener on \[::\]:25" "$log" || fail "not listening on port 25"

printf 'a long passphrase\n' | doc "runuser -u sipmta -- sipmta --config /etc/sipmta/sipmta.toml user add alice@example.com"
users=$(doc "runuser -u sipmta -- sipmta --config /etc/sipmta/sipmta.toml user list")
grep -q alice@example.com <<< "$users" || fail "user list does not show alice: $users"

doc_says "apt-get install -y swaks" "installed already, and this namespace has no network"
doc_block "swaks --server mail.example.com:587 --tls --auth PLAIN --auth-user alice@example.com \\" \
    "      --from alice@example.com --to someone@example.net" "--auth-password 'a long passphrase' --header 'Subject: from alice'" \
    > "$work/swaks-587.txt" || { cat "$work/swaks-587.txt"; fail "submission on 587"; }
doc "swaks --server mail.example.com:25 --from someone@example.net --to postmaster@example.com" > "$work/swaks-25.txt" \
    || { cat "$work/swaks-25.txt"; fail "reception on 25"; }
wait_for "postmaster's mail" sh -c 'ls /var/lib/sipmta/maildir/example.com/postmaster/new/ | grep -q .'
doc "ls /var/lib/sipmta/maildir/example.com/postmaster/new/"
sent_by() { grep -l "$1" "$work"/sink/msg.* 2>/dev/null | head -1 | grep .; }
wait_for "alice's mail at example.net's server" sent_by "Subject: from alice" >/dev/null
doc "runuser -u sipmta -- sipmta --config /etc/sipmta/sipmta.toml queue list"
doc "runuser -u sipmta -- sipmta --config /etc/sipmta/sipmta.toml history --since 1h" | tee "$work/history.txt"
grep -q "relayed" "$work/history.txt" || fail "history shows no relayed message"

step "Signed: an independent verifier (dkimpy) checks both signatures against the DNS records"
for index in 0 1; do
    dkimverify --index "$index" < "$(sent_by 'Subject: from alice')" || fail "DKIM signature $index does not verify"
done

step "12. sendmail for cron and PHP"
doc_block "cat > /usr/sbin/sendmail <<'EOF'" "EOF"
doc "chmod 0755 /usr/sbin/sendmail"
# An ordinary user's cron job: it may read the config but not the keys and certificate beside it.
printf 'Subject: from cron\n\nnightly report\n' | runuser -u nobody -- /usr/sbin/sendmail -i someone@example.net \
    || fail "sendmail as an ordinary user"
wait_for "the cron mail at example.net's server" sent_by "Subject: from cron" >/dev/null
dkimverify < "$(sent_by 'Subject: from cron')" || fail "the cron mail is not signed"

step "11. Reload"
doc_says "runuser -u sipmta -- sipmta check-config /etc/sipmta/sipmta.toml && systemctl reload sipmta" "no systemd: check-config, then the unit's ExecReload"
[ "$(key ExecReload)" = '/bin/kill -HUP $MAINPID' ] || fail "the unit's ExecReload changed"
doc "runuser -u sipmta -- sipmta check-config /etc/sipmta/sipmta.toml"
/bin/kill -HUP "$mainpid"
wait_for "the reload" grep -q '"message":"configuration reloaded"' "$log"

step "13. Observe"
doc "curl -s http://127.0.0.1:8025/status" > "$work/status.html"
grep -q "relay" "$work/status.html" || fail "the status page shows no relay delivery"
doc "curl -s http://127.0.0.1:8025/metrics" > "$work/metrics.txt"
metric() { awk -v m="$1" '$1 == m { print $2 }' "$work/metrics.txt"; }
for m in 'sipmta_deliveries_total{route="relay",result="relayed"}' 'sipmta_deliveries_total{route="local",result="delivered"}'; do
    [ -n "$(metric "$m")" ] && [ "$(metric "$m")" != 0 ] || { grep sipmta_deliveries "$work/metrics.txt"; fail "no $m"; }
done
grep -q '^sipmta_messages_received_total{listener="submission"} ' "$work/metrics.txt" || fail "no receptions by listener"
grep -q '^sipmta_delivery_seconds_bucket{route="relay",le=' "$work/metrics.txt" || fail "no delivery-time histogram"
id=$(sed -n 's/.*queued as \([0-9A-F]\{16\}\).*/\1/p' "$work/swaks-587.txt" | head -1)
[ -n "$id" ] || fail "no queue id in the submission transcript"
followed=$(sipmta log "$id" < "$log")
grep -q '"message":"delivery"' <<< "$followed" && grep -q '"message":"message accepted"' <<< "$followed" \
    || { echo "$followed"; fail "sipmta log does not follow $id"; }
jq_line=$(grep -F "jq -c 'select(.queue_id ==" "$guide" | head -1)
[ -n "$jq_line" ] || fail "INSTALL.md no longer gives the jq recipe"
recipe=$(sed -e 's/^journalctl -u sipmta -o cat | //' -e "s/6A1F0B2C00000007/$id/g" <<< "$jq_line")
printf '$ %s < serve.log\n' "$recipe"
picked=$(eval "$recipe" < "$log") || fail "jq cannot read the log"
grep -q '"result":"relayed"' <<< "$picked" || { echo "$picked"; fail "the jq recipe finds no relayed delivery of $id"; }

step "Stop (SIGTERM, as systemctl stop sends)"
kill -TERM "$mainpid"
wait "$mainpid" || fail "sipmta exited with $? on SIGTERM"
printf '\nfollowed INSTALL.md: a running, signed, observable site\n'
