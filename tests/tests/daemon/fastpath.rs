//! Two sipmta sites registered with Kamailio exchange mail directly over the SIP fast path
//! (issue 5's "done when"), and failures fall back to relay with nothing lost.

use crate::support::sip::{DOMAIN, Kamailio, free_port};
use crate::support::*;

/// A site owning `domain` and the number `number` (registered with `kam`); `extra` adds tables.
fn site(kam: &Kamailio, domain: &str, number: &str, fastpath: bool, relay_extra: &str) -> Daemon {
    let sip = free_port();
    let tables = format!(
        "[fastpath]\nenabled = {fastpath}\nsip_listen = \"127.0.0.1:{sip}\"\nproxy = \"{}\"\ndomain = \"{DOMAIN}\"\nanswer_budget = \"3s\"\n\
         [[fastpath.numbers]]\nnumber = \"{number}\"\n\
         [relay]\nretry = [\"1s\"]\nnameservers = [\"127.0.0.1:9\"]\n[relay.transport]\n\"remote.example\" = \"[127.0.0.1]:9\"\n{relay_extra}",
        kam.addr
    );
    Daemon::start(&format!("trusted_networks = [\"127.0.0.0/8\"]\nlocal_domains = [\"{domain}\"]"), &tables)
}

fn send(from: &Daemon, to: &str, subject: &str) -> String {
    let out = from.swaks(&["--to", to, "--from", "alice@a.example", "--h-Subject", subject]);
    let t = transcript(&out);
    assert!(out.status.success(), "{t}");
    queue_id(&t)
}

fn history(d: &Daemon, id: &str) -> String {
    String::from_utf8_lossy(&cli(&d.config, &["queue", "show", id], "").stdout).into_owned()
}

#[test]
fn two_sites_exchange_mail_over_the_fast_path() {
    let kam = Kamailio::start();
    let b = site(&kam, "b.example", "050-2222-2222", true, "");
    let a = site(&kam, "a.example", "050-1111-1111", true, &format!("\"b.example\" = \"[127.0.0.1]:{}\"\n", b.smtp.port()));
    let out = cli(&a.config, &["route", "add", "b.example", "050-2222-2222"], "");
    assert!(out.status.success(), "{}", transcript(&out));
    let id = send(&a, "bob@b.example", "first by fast path");
    let mail = &b.wait_mailbox("b.example/bob", 1)[0];
    assert!(mail.contains("Subject: first by fast path"), "{mail}");
    let mut shown = String::new();
    wait_for("A to record the delivery", || {
        shown = history(&a, &id);
        shown.contains("delivered via fast path to +815022222222")
    });
    assert!(kam.log().contains("INVITE"), "Kamailio saw the INVITE");
    let table = String::from_utf8_lossy(&cli(&a.config, &["protocol", "list"], "").stdout).into_owned();
    assert!(table.contains("+815022222222  smtp   0 uses"), "the first call negotiated: {table}");
    // The second message to the same number skips PROTOS? (the protocol table knows smtp).
    let second = send(&a, "carol@b.example", "second, known protocol");
    b.wait_mailbox("b.example/carol", 1);
    wait_for("A to record the second delivery", || history(&a, &second).contains("delivered via fast path"));
    let table = String::from_utf8_lossy(&cli(&a.config, &["protocol", "list"], "").stdout).into_owned();
    assert!(table.contains("+815022222222  smtp   1 uses"), "the second call used the table: {table}");
}

#[test]
fn an_unregistered_number_falls_back_to_relay_and_delivers_once() {
    let kam = Kamailio::start();
    // B does not run its fast path: Kamailio has nobody registered for its number.
    let b = site(&kam, "b.example", "050-2222-2222", false, "");
    let a = site(&kam, "a.example", "050-1111-1111", true, &format!("\"b.example\" = \"[127.0.0.1]:{}\"\n", b.smtp.port()));
    assert!(cli(&a.config, &["route", "add", "b.example", "050-2222-2222"], "").status.success());
    let id = send(&a, "bob@b.example", "falls back");
    let mail = b.wait_mailbox("b.example/bob", 1);
    assert_eq!(mail.len(), 1);
    let mut shown = String::new();
    wait_for("A to record the fallback and the relay", || {
        shown = history(&a, &id);
        shown.contains("no longer queued")
    });
    assert!(shown.contains("fast path to +815022222222 failed: SIP call to +815022222222: ") && shown.contains("relaying"), "{shown}");
    assert!(shown.contains("relayed: 127.0.0.1"), "{shown}");
    assert_eq!(b.mailbox("b.example/bob").len(), 1, "delivered exactly once");
}
