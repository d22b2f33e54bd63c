//! Header and body evidence names the destination of the whole message, so it applies only
//! when every non-local recipient is in one domain.

use sipmta_rules::{Evidence, Examined, Route, decide, needs_message};

use crate::support::*;

const SUBJECT_NUMBER: &str = "Subject: 050-7777-8888\n\n";

#[test]
fn several_domains_ignore_the_message_and_say_so() {
    let view = message(SUBJECT_NUMBER);
    let ds = decide_all(&["a@b.example", "c@A.example"], Some(&view));
    for d in &ds {
        assert_eq!(d.route, Route::Relay);
        assert_eq!(d.evidence.to_string(), "header/body evidence ignored: recipients are in 2 domains (a.example, b.example)");
    }
}

#[test]
fn a_recipient_decided_by_its_address_still_counts_as_a_domain() {
    let view = message(SUBJECT_NUMBER);
    let ds = decide_all(&["abc@efg.com", "x@other.example"], Some(&view));
    assert_fast(&ds[0], "+815011110001");
    assert_eq!(ds[1].evidence, Evidence::MessageEvidenceIgnored { domains: vec!["efg.com".into(), "other.example".into()] });
}

#[test]
fn one_domain_applies_the_message_to_every_undecided_recipient() {
    let view = message(SUBJECT_NUMBER);
    // Case and a trailing dot do not make another domain; local recipients do not count.
    let ds = decide_all(&["a@x.example", "bob@local.example", "B@X.EXAMPLE.", "kyoto@x.example"], Some(&view));
    assert_fast(&ds[0], "+815077778888");
    assert_eq!(ds[1].route, Route::Local);
    assert_fast(&ds[2], "+815077778888");
    assert_fast(&ds[3], "+815022220001");
}

#[test]
fn without_a_message_nothing_is_ignored() {
    let ds = decide_all(&["a@x.example"], None);
    assert_eq!(ds[0].evidence, Evidence::NoEvidence { examined: Examined::Envelope });
}

#[test]
fn needs_message_tells_the_caller_when_to_parse() {
    let t = tables();
    let ask = |list: &[&str]| needs_message(&rcpts(list), &is_local, &t);
    assert!(ask(&["a@x.example"]));
    assert!(ask(&["a@x.example", "b@x.example", "bob@local.example"]));
    assert!(!ask(&["a@x.example", "b@y.example"]), "two domains: the message would be ignored");
    assert!(!ask(&["abc@efg.com", "bob@local.example"]), "the envelope decides everyone");
    assert!(!ask(&[]));
    // And when it says no, the message indeed changes nothing.
    let view = message(SUBJECT_NUMBER);
    for list in [&["a@x.example", "b@y.example"][..], &["abc@efg.com"]] {
        let with = decide(&rcpts(list), &is_local, Some(&view), &t);
        let without = decide(&rcpts(list), &is_local, None, &t);
        assert_eq!(with, without);
    }
}
