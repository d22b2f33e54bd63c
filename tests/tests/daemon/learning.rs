//! Number exchange (issue 7): two sites that start knowing nothing of each other. The first
//! message goes by relay carrying A's number, DKIM-signed; B learns it, and its success DSN
//! goes back by fast path carrying B's number; A learns that from the report, and the second
//! message goes by fast path with no operator action. DNS (DKIM keys, SPF) is a dnsmasq on
//! loopback and the keys are made with openssl, so the signatures are real.
//!
//! Forgeries are refused: a copy of A's signed message with another number, an extra header on
//! top of a genuine one, and an unsigned claim from a host SPF does not allow, none of which
//! changes where anyone's mail goes, and neither does a proven claim for an address the
//! operator's tables already route. A learned entry expires. A confirmation whose call fails
//! is relayed instead.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use crate::fastpath::wait_history;
use crate::support::peers::Dns;
use crate::support::sip::{DOMAIN, free_port};
use crate::support::smtp::Raw;
use crate::support::*;

/// An RSA-2048 key in PKCS#8 PEM at `path`, and its DKIM TXT record's text.
fn dkim_key(path: &Path) -> String {
    require("openssl");
    let made = Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
        .arg(path)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", transcript(&made));
    let public = Command::new("openssl").args(["pkey", "-pubout", "-outform", "DER", "-in"]).arg(path).output().unwrap();
    assert!(public.status.success(), "{}", transcript(&public));
    format!("v=DKIM1; k=rsa; p={}", base64(&public.stdout))
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A dnsmasq `--txt-record` option; a record longer than one DNS string (255 octets) is split
/// into several strings, which DKIM verifiers join (RFC 6376 §3.6.2.2).
fn txt(name: &str, text: &str) -> String {
    let parts: Vec<&str> = text.as_bytes().chunks(200).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("--txt-record={name},{}", parts.join(","))
}

/// A site: `domain`, host name `mx.<domain>`, number `number`, SMTP on `smtp`, a DKIM key for
/// `domain`, DNS at `dns`, and mail for `peer_domain` relayed to `peer_smtp`. `top` adds
/// top-level keys (trusted networks), `tables` more tables.
struct Site<'a> {
    domain: &'a str,
    number: &'a str,
    smtp: u16,
    registrar: &'a str,
    proxy: u16,
    peer_domain: &'a str,
    peer_smtp: u16,
    top: &'a str,
    tables: &'a str,
}

impl Site<'_> {
    /// The config's directory prepared (key written), not started: returns the TXT record.
    fn prepare(&self, dns: SocketAddr) -> (tempfile::TempDir, std::path::PathBuf, String) {
        let (dir, config) = Daemon::prepare("", "");
        let key = dir.path().join("dkim.pem");
        let record = dkim_key(&key);
        let sip = free_port();
        let (domain, number, smtp, proxy) = (self.domain, self.number, self.smtp, self.proxy);
        let text = format!(
            "hostname = \"mx.{domain}\"\ndata_dir = \"{data}\"\nlocal_domains = [\"{domain}\"]\n{top}\n\
             [smtp]\nlisten = [\"127.0.0.1:{smtp}\"]\n[submission]\nlisten = [\"127.0.0.1:0\"]\n[spool]\nmin_free_space = 0\n\
             [admin]\nlisten = [\"127.0.0.1:0\"]\n[registrar]\n{registrar}\n\
             [fastpath]\nenabled = true\nsip_listen = \"127.0.0.1:{sip}\"\nproxy = \"127.0.0.1:{proxy}\"\ndomain = \"{DOMAIN}\"\n\
             session_idle = \"0s\"\n[[fastpath.numbers]]\nnumber = \"{number}\"\n\
             [relay]\nretry = [\"1s\"]\nnameservers = [\"{dns}\"]\ndns_timeout = \"2s\"\n\
             [relay.transport]\n\"{peer}\" = \"[127.0.0.1]:{peer_smtp}\"\n\
             [[dkim.keys]]\ndomain = \"{domain}\"\nselector = \"s1\"\nkey = \"{key}\"\n{tables}\n",
            data = dir.path().join("data").display(),
            top = self.top,
            registrar = self.registrar,
            peer = self.peer_domain,
            peer_smtp = self.peer_smtp,
            key = key.display(),
            tables = self.tables,
        );
        std::fs::write(&config, text).unwrap();
        (dir, config, record)
    }
}

/// Site A (a.example, 050-1111-1111): runs the registrar (`registrar_listen`) on `registrar`,
/// and its users submit from 127.0.0.1, which it trusts.
fn site_a<'a>(registrar_listen: &'a str, registrar: u16, smtp: u16, b_smtp: u16) -> Site<'a> {
    Site {
        domain: "a.example",
        number: "050-1111-1111",
        smtp,
        registrar: registrar_listen,
        proxy: registrar,
        peer_domain: "b.example",
        peer_smtp: b_smtp,
        top: "trusted_networks = [\"127.0.0.1/32\"]",
        tables: "",
    }
}

/// Site B (b.example, 050-2222-2222) for `a`: registers with A's registrar and trusts nobody,
/// so everything A sends it is mail from another site.
fn site_b<'a>(a: &Site<'a>, smtp: u16, tables: &'a str) -> Site<'a> {
    Site {
        domain: "b.example",
        number: "050-2222-2222",
        smtp,
        registrar: "enabled = false",
        proxy: a.proxy,
        peer_domain: "a.example",
        peer_smtp: a.smtp,
        top: "",
        tables,
    }
}

/// Submit with the DSN parameters (swaks has none): `NOTIFY=SUCCESS,FAILURE`.
fn submit(to: &Daemon, from: &str, rcpt: &str, subject: &str) -> String {
    let message = format!(
        "From: Alice <{from}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@a.example>\r\n\
         Disposition-Notification-To: <{from}>\r\n\r\nHello.\r\n"
    );
    submit_message(to, from, rcpt, &message)
}

/// Send `message` (ending in CRLF) with `NOTIFY=SUCCESS,FAILURE` from 127.0.0.1; its queue id.
fn submit_message(to: &Daemon, from: &str, rcpt: &str, message: &str) -> String {
    let (mut c, greeting) = Raw::connect(to.smtp);
    assert!(greeting.starts_with("220"), "{greeting}");
    assert!(c.cmd("EHLO client.a.example").starts_with("250"));
    assert!(c.cmd(&format!("MAIL FROM:<{from}> RET=HDRS")).starts_with("250"));
    assert!(c.cmd(&format!("RCPT TO:<{rcpt}> NOTIFY=SUCCESS,FAILURE")).starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    let reply = c.cmd(&format!("{message}."));
    assert!(reply.starts_with("250"), "{reply}");
    let _ = c.cmd("QUIT");
    queue_id(&reply)
}

/// The id of the first report `d` logs on a line with `marker`, once it has logged one (the
/// log line follows the delivery that caused it).
fn report_id(d: &Daemon, marker: &str) -> String {
    let find = || {
        d.log()
            .lines()
            .filter(|l| l.contains(marker))
            .find_map(|l| l.split("dsn_id=").nth(1).map(|s| s.split_whitespace().next().unwrap_or_default().to_owned()))
    };
    wait_for(&format!("a report logged with {marker:?}"), || find().is_some());
    find().unwrap()
}

fn learned(d: &Daemon) -> serde_json::Value {
    let out = cli(&d.config, &["learned", "list", "--json"], "");
    assert!(out.status.success(), "{}", transcript(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn learned_tel(d: &Daemon, address: &str) -> Option<String> {
    learned(d).as_array().unwrap().iter().find(|r| r["address"] == address).map(|r| r["tel"].as_str().unwrap().to_owned())
}

/// Send `message` to `d`'s SMTP listener from `source` (a loopback address) with swaks.
fn inject(d: &Daemon, source: &str, from: &str, rcpt: &str, message: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.eml");
    std::fs::write(&file, message).unwrap();
    let out = d.swaks(&["--local-interface", source, "--from", from, "--to", rcpt, "--data", file.to_str().unwrap()]);
    let t = transcript(&out);
    assert!(out.status.success(), "{t}");
    queue_id(&t)
}

#[test]
fn two_sites_learn_each_others_numbers_and_the_second_message_goes_fast() {
    let (a_smtp, b_smtp, registrar) = (free_port(), free_port(), free_port());
    let listen = format!("listen = \"127.0.0.1:{registrar}\"");
    let a = site_a(&listen, registrar, a_smtp, b_smtp);
    let b = site_b(&a, b_smtp, "[local]\nsend_mdn = true");
    // The DNS server's port is needed in the configs, the keys' records in the DNS server.
    let dns_addr = Dns::address();
    let (a_dir, a_config, a_record) = a.prepare(dns_addr);
    let (b_dir, b_config, b_record) = b.prepare(dns_addr);
    let _dns = Dns::start_at(
        dns_addr,
        &[
            txt("s1._domainkey.a.example", &a_record),
            txt("s1._domainkey.b.example", &b_record),
            // Only 127.0.0.1 sends for either domain: a forger on 127.0.0.3 fails SPF.
            txt("a.example", "v=spf1 ip4:127.0.0.1 -all"),
            txt("b.example", "v=spf1 ip4:127.0.0.1 -all"),
        ],
    );
    let a = Daemon::start_with(a_dir, a_config);
    let b = Daemon::start_with(b_dir, b_config);

    // 1. Nobody knows anybody: relay, with A's number and A's signature.
    let first = submit(&a, "alice@a.example", "bob@b.example", "first");
    wait_history(&a, &first, "relayed");
    let got = b.wait_mailbox("b.example/bob", 1);
    assert!(got[0].contains("X-Fastpath-Tel: +815011111111"), "{}", got[0]);
    assert!(got[0].contains("DKIM-Signature:") && got[0].contains("d=a.example"), "{}", got[0]);
    // B learned A's number from the signature, before delivering.
    assert_eq!(learned_tel(&b, "alice@a.example").as_deref(), Some("+815011111111"), "{}", b.log());
    let row = learned(&b)[0].clone();
    assert!(row["evidence"].as_str().unwrap().contains("DKIM pass d=a.example"), "{row}");

    // 2. The success DSN goes back over the fast path, carrying B's number; A learns it.
    let dsn_id = report_id(&b, "dsn_id=");
    wait_history(&b, &dsn_id, "delivered via fast path to +815011111111");
    let shown = wait_history(&a, &first, "DSN from");
    assert!(shown.contains("delivered"), "{shown}");
    // And the receipt (MDN) the message asked for, by the same way.
    let mdn_id = report_id(&b, "MDN queued");
    wait_history(&b, &mdn_id, "delivered via fast path to +815011111111");
    let reports = a.wait_mailbox("a.example/alice", 2);
    assert!(reports.iter().any(|m| m.contains("report-type=delivery-status")), "{reports:?}");
    assert!(reports.iter().any(|m| m.contains("report-type=disposition-notification") && m.contains("processed")), "{reports:?}");
    wait_for("A to learn bob's number", || learned_tel(&a, "bob@b.example").as_deref() == Some("+815022222222"));
    // B's operator sees both reports in its metrics.
    let scrape = b.admin_get("/metrics");
    for line in ["sipmta_reports_sent_total{kind=\"delivered\"} 1", "sipmta_reports_sent_total{kind=\"mdn\"} 1"] {
        assert!(scrape.lines().any(|l| l == line), "no `{line}` in B's /metrics:\n{scrape}");
    }

    // 3. The second message goes by fast path, by itself.
    let explain = cli(&a.config, &["route", "explain", "bob@b.example"], "");
    let explained = transcript(&explain);
    assert!(explained.contains("learned table entry bob@b.example -> +815022222222"), "{explained}");
    assert!(explained.contains("learned:") && explained.contains("DSN about message"), "{explained}");
    let second = submit(&a, "alice@a.example", "bob@b.example", "second");
    wait_history(&a, &second, "delivered via fast path to +815022222222");
    b.wait_mailbox("b.example/bob", 2);
}

#[test]
fn forged_claims_are_not_learned_and_change_nothing() {
    let (a_smtp, b_smtp, registrar) = (free_port(), free_port(), free_port());
    let listen = format!("listen = \"127.0.0.1:{registrar}\"");
    let a = site_a(&listen, registrar, a_smtp, b_smtp);
    let b = site_b(&a, b_smtp, "");
    let dns_addr = Dns::address();
    let (a_dir, a_config, a_record) = a.prepare(dns_addr);
    let (b_dir, b_config, _) = b.prepare(dns_addr);
    let _dns = Dns::start_at(dns_addr, &[txt("s1._domainkey.a.example", &a_record), txt("a.example", "v=spf1 ip4:127.0.0.1 -all")]);
    let a = Daemon::start_with(a_dir, a_config);
    let b = Daemon::start_with(b_dir, b_config);
    // A genuine signed message first: B learns alice's number.
    submit(&a, "alice@a.example", "bob@b.example", "genuine");
    let genuine = b.wait_mailbox("b.example/bob", 1).remove(0);
    wait_for("B to learn alice", || learned_tel(&b, "alice@a.example").is_some());
    // What arrived, from the signature down (our Received header and B's own fields dropped).
    let signed = &genuine[genuine.find("DKIM-Signature:").unwrap()..];

    // a. The same message with another number, from a host SPF does not allow.
    let altered = signed.replace("X-Fastpath-Tel: +815011111111", "X-Fastpath-Tel: +815099999999");
    let id = inject(&b, "127.0.0.3", "alice@a.example", "bob@b.example", &altered);
    wait_history(&b, &id, "not learned");
    // b. A second header on top of the genuine, signed one.
    let stacked = format!("X-Fastpath-Tel: +815099999999\r\n{signed}");
    let id = inject(&b, "127.0.0.3", "alice@a.example", "bob@b.example", &stacked);
    wait_history(&b, &id, "more than one X-Fastpath-Tel header");
    // c. A claim for another address of the domain, unsigned, from the wrong host.
    let unsigned = "From: <carol@a.example>\r\nTo: <bob@b.example>\r\nSubject: trust me\r\nX-Fastpath-Tel: +815099999999\r\n\r\nhi\r\n";
    let id = inject(&b, "127.0.0.3", "carol@a.example", "bob@b.example", unsigned);
    let shown = wait_history(&b, &id, "not learned");
    assert!(shown.contains("SPF fail"), "{shown}");

    b.wait_mailbox("b.example/bob", 4);
    assert_eq!(learned_tel(&b, "alice@a.example").as_deref(), Some("+815011111111"), "{}", b.log());
    assert_eq!(learned_tel(&b, "carol@a.example"), None);
    assert_eq!(learned(&b).as_array().unwrap().len(), 1);
    let explain = transcript(&cli(&b.config, &["route", "explain", "carol@a.example"], ""));
    assert!(explain.contains("relay"), "{explain}");
}

#[test]
fn an_spf_proven_number_is_learned_then_expires() {
    let dns = Dns::start(&[txt("a.example", "v=spf1 ip4:127.0.0.1 -all")]);
    let tables = format!(
        "[learning]\nlifetime = \"5s\"\n[relay]\nnameservers = [\"{}\"]\n[relay.transport]\n\"remote.example\" = \"[127.0.0.1]:9\"",
        dns.addr
    );
    let mut b = Daemon::start("local_domains = [\"b.example\"]", &tables);
    let message = "From: <alice@a.example>\r\nTo: <bob@b.example>\r\nSubject: hi\r\nX-Fastpath-Tel: 050-1111-1111\r\n\r\nhi\r\n";
    let id = inject(&b, "127.0.0.1", "alice@a.example", "bob@b.example", message);
    wait_history(&b, &id, "learned +815011111111 for alice@a.example: SPF pass for a.example");
    let explain = transcript(&cli(&b.config, &["route", "explain", "alice@a.example"], ""));
    assert!(explain.contains("fast path to +815011111111") && explain.contains("expires:"), "{explain}");
    // Five seconds later it is gone: from the list, and from routing.
    wait_for("the learned number to expire", || learned(&b).as_array().unwrap().is_empty());
    b.wait_log("learned number expired");
    let explain = transcript(&cli(&b.config, &["route", "explain", "alice@a.example"], ""));
    assert!(explain.contains("relay"), "{explain}");
    // And the operator can remove one by hand.
    let id = inject(&b, "127.0.0.1", "alice@a.example", "bob@b.example", message);
    wait_history(&b, &id, "learned +815011111111");
    let out = cli(&b.config, &["learned", "rm", "Alice@A.example"], "");
    assert!(out.status.success(), "{}", transcript(&out));
    assert!(learned(&b).as_array().unwrap().is_empty());
}

#[test]
fn the_callers_number_proves_a_claim_only_where_the_sip_server_is_trusted_to_check_it() {
    let (a_smtp, b_smtp, c_smtp, registrar) = (free_port(), free_port(), free_port(), free_port());
    let listen = format!("listen = \"127.0.0.1:{registrar}\"");
    let a = site_a(&listen, registrar, a_smtp, b_smtp);
    // No DNS answers here: neither DKIM nor SPF can prove anything, only the call.
    let b = site_b(&a, b_smtp, "[learning]\ntrust_sip_identity = true");
    let c = Site { domain: "c.example", number: "050-3333-3333", smtp: c_smtp, tables: "", ..b };
    let nowhere: SocketAddr = ([127, 0, 0, 1], 9).into();
    let (a, b, c) = (a.prepare(nowhere), b.prepare(nowhere), c.prepare(nowhere));
    let a = Daemon::start_with(a.0, a.1);
    let (b, c) = (Daemon::start_with(b.0, b.1), Daemon::start_with(c.0, c.1));
    for (key, number) in [("b.example", "050-2222-2222"), ("c.example", "050-3333-3333")] {
        let out = cli(&a.config, &["route", "add", key, number], "");
        assert!(out.status.success(), "{}", transcript(&out));
    }
    let to_b = submit(&a, "alice@a.example", "bob@b.example", "to-b");
    wait_history(&a, &to_b, "via fast path to +815022222222");
    let to_c = submit(&a, "alice@a.example", "carol@c.example", "to-c");
    wait_history(&a, &to_c, "via fast path to +815033333333");
    b.wait_mailbox("b.example/bob", 1);
    c.wait_mailbox("c.example/carol", 1);
    // B trusts its SIP server's caller identity: A's number is learned from the call.
    wait_for("B to learn alice", || learned_tel(&b, "alice@a.example").is_some());
    let row = learned(&b)[0].clone();
    assert_eq!(row["tel"], "+815011111111");
    assert!(row["evidence"].as_str().unwrap().contains("fast-path call from +815011111111"), "{row}");
    // C does not (the default): the same message teaches it nothing.
    let received = c.log().lines().find_map(|l| l.split("queue_id=").nth(1).map(|s| s.split_whitespace().next().unwrap().to_owned()));
    let received = received.unwrap_or_else(|| panic!("nothing received:\n{}", c.log()));
    let shown = wait_history(&c, &received, "not learned");
    assert!(shown.contains("not trusted"), "{shown}");
    assert!(learned(&c).as_array().unwrap().is_empty());
}

/// B learns alice's number from the seed's `From: IPTELNUM-...` form (SPF-proven), but A's
/// site has no fast path: the success DSN's call finds nobody registered and the report is
/// relayed to A's mail server instead, so alice still hears of the delivery.
#[test]
fn a_confirmation_whose_call_fails_is_relayed_instead() {
    let a = Daemon::start("local_domains = [\"a.example\"]", "");
    let registrar = free_port();
    let listen = format!("listen = \"127.0.0.1:{registrar}\"");
    // B runs its own registrar, where only B's number is registered.
    let b = Site {
        domain: "b.example",
        number: "050-2222-2222",
        smtp: free_port(),
        registrar: &listen,
        proxy: registrar,
        peer_domain: "a.example",
        peer_smtp: a.smtp.port(),
        top: "",
        tables: "",
    };
    let dns_addr = Dns::address();
    let (b_dir, b_config, _) = b.prepare(dns_addr);
    let _dns = Dns::start_at(dns_addr, &[txt("a.example", "v=spf1 ip4:127.0.0.1 -all")]);
    let b = Daemon::start_with(b_dir, b_config);
    let message = "From: IPTELNUM-050-1111-1111 <alice@a.example>\r\nTo: <bob@b.example>\r\n\
                   Subject: seed form\r\nMessage-ID: <seed-form@a.example>\r\n\r\nHello.\r\n";
    let id = submit_message(&b, "alice@a.example", "bob@b.example", message);
    wait_history(&b, &id, "learned +815011111111 for alice@a.example: SPF pass for a.example");
    b.wait_mailbox("b.example/bob", 1);

    let dsn_id = report_id(&b, "dsn_id=");
    let shown = wait_history(&b, &dsn_id, "no longer queued");
    assert!(shown.contains("fast path to +815011111111 failed") && shown.contains("relaying"), "{shown}");
    assert!(shown.contains("relayed: 127.0.0.1"), "{shown}");
    let reports = a.wait_mailbox("a.example/alice", 1);
    assert!(reports[0].contains("report-type=delivery-status") && reports[0].contains("Action: delivered"), "{}", reports[0]);
}

/// A proven claim for an address the operator's tables already route changes nothing: the
/// table keeps deciding and the history says why the number was not learned.
#[test]
fn a_proven_claim_never_replaces_an_operators_route() {
    let dns = Dns::start(&[txt("a.example", "v=spf1 ip4:127.0.0.1 -all")]);
    let tables = format!("[relay]\nnameservers = [\"{}\"]\n[relay.transport]\n\"remote.example\" = \"[127.0.0.1]:9\"", dns.addr);
    let b = Daemon::start("local_domains = [\"b.example\"]", &tables);
    let out = cli(&b.config, &["route", "add", "a.example", "050-7777-7777"], "");
    assert!(out.status.success(), "{}", transcript(&out));
    let message = "From: <alice@a.example>\r\nTo: <bob@b.example>\r\nSubject: hi\r\nX-Fastpath-Tel: 050-1111-1111\r\n\r\nhi\r\n";
    let id = inject(&b, "127.0.0.1", "alice@a.example", "bob@b.example", message);
    let shown = wait_history(&b, &id, "not learned");
    assert!(shown.contains("+815011111111") && shown.contains("the operator's tables decide it"), "{shown}");
    assert!(learned(&b).as_array().unwrap().is_empty());
    let explain = transcript(&cli(&b.config, &["route", "explain", "alice@a.example"], ""));
    assert!(explain.contains("+815077777777") && !explain.contains("+815011111111"), "{explain}");
}
