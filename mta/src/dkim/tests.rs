//! Signing checked the way a receiver checks it: mail-auth's verifier, with the public key
//! record (as `sipmta dkim record` prints it) served from a TXT cache instead of DNS. Also the
//! `[dkim]` config checks.

#![allow(clippy::unwrap_used)]

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt};

use super::*;
use crate::config::{Config, Dkim, DkimKey};

const RSA_PKCS8: &str = "src/dkim/testdata/rsa2048.pkcs8.pem";
const RSA_PKCS1: &str = "src/dkim/testdata/rsa2048.pkcs1.pem";
const ED25519: &str = "src/dkim/testdata/ed25519.openssl.pem";

const MESSAGE: &str = "From: Taro <taro@a.example>\r\n\
To: hanako@b.example\r\n\
Subject: Order 42\r\n\
Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n\
Message-ID: <42@a.example>\r\n\
X-Fastpath-Tel: 050-1234-5678\r\n\
\r\n\
Please call.\r\n";

fn testdata(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn key(domain: &str, selector: &str, file: &str) -> DkimKey {
    DkimKey { domain: domain.into(), selector: selector.into(), key: testdata(file) }
}

fn signers(keys: Vec<DkimKey>) -> Signers {
    Signers::new(&Dkim { keys, ..Dkim::default() }).unwrap()
}

/// A TXT cache that knows the given records and nothing else.
pub(crate) struct Txts(HashMap<Box<str>, Txt>);

impl ResolverCache<Box<str>, Txt> for Txts {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.get(name).cloned()
    }

    fn remove<Q>(&self, _: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _: Box<str>, _: Txt, _: Instant) {}
}

/// A cache holding these `(name, TXT value)` records, names as in a zone file
/// (`s2026._domainkey.a.example.`).
pub(crate) fn txts(records: &[(String, String)]) -> Txts {
    let map =
        records.iter().map(|(name, value)| (name.to_lowercase().into_boxed_str(), Txt::from(DomainKey::parse(value.as_bytes())))).collect();
    Txts(map)
}

/// The records for these keys, as `sipmta dkim record` prints them.
fn records(keys: &[DkimKey]) -> Txts {
    txts(&keys.iter().map(|k| (format!("{}._domainkey.{}.", k.selector, k.domain), load_key(&k.key).unwrap().record())).collect::<Vec<_>>())
}

/// The verifier's result for each signature on `message`.
pub(crate) fn verify(message: &[u8], txts: &Txts) -> Vec<DkimResult> {
    let parsed = AuthenticatedMessage::parse(message).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        // The resolver is never asked: every record it would look up is in the cache.
        let auth = MessageAuthenticator::new_cloudflare().unwrap();
        auth.verify_dkim(Parameters::new(&parsed).with_txt_cache(txts)).await.iter().map(|o| o.result().clone()).collect()
    })
}

fn signed(signers: &Signers, message: &str) -> String {
    let fields = signers.sign(message.as_bytes()).unwrap().unwrap();
    format!("{fields}{message}")
}

#[test]
fn rsa_and_ed25519_signatures_verify() {
    for file in [RSA_PKCS8, RSA_PKCS1, ED25519] {
        let keys = vec![key("a.example", "s2026", file)];
        let out = signed(&signers(keys.clone()), MESSAGE);
        assert!(out.starts_with("DKIM-Signature: v=1; a="), "{out}");
        assert!(out.contains("c=relaxed/relaxed") && out.contains("d=a.example") && out.contains("s=s2026"), "{out}");
        assert_eq!(verify(out.as_bytes(), &records(&keys)), vec![DkimResult::Pass], "{file}: {out}");
    }
}

#[test]
fn a_domain_with_both_key_types_gets_both_signatures_rsa_first() {
    let keys = vec![key("a.example", "ed", ED25519), key("a.example", "rsa", RSA_PKCS8)];
    let out = signed(&signers(keys.clone()), MESSAGE);
    let (rsa, ed) = (out.find("v=1; a=rsa-sha256;").unwrap(), out.find("v=1; a=ed25519-sha256;").unwrap());
    assert!(rsa < ed, "{out}");
    assert_eq!(verify(out.as_bytes(), &records(&keys)), vec![DkimResult::Pass, DkimResult::Pass]);
}

#[test]
fn changing_or_adding_x_fastpath_tel_breaks_the_signature() {
    let keys = vec![key("a.example", "s2026", ED25519)];
    let s = signers(keys.clone());
    let txts = records(&keys);
    let out = signed(&s, MESSAGE);
    let changed = out.replace("X-Fastpath-Tel: 050-1234-5678", "X-Fastpath-Tel: 050-9999-0000");
    assert!(matches!(verify(changed.as_bytes(), &txts)[..], [DkimResult::Fail(_)]), "{changed}");

    // Signed without the field: adding one later is a change too (it was signed as absent).
    let without = MESSAGE.replace("X-Fastpath-Tel: 050-1234-5678\r\n", "");
    let out = signed(&s, &without);
    assert!(out.contains("X-Fastpath-Tel") && !without.contains("X-Fastpath-Tel"), "h= lists it: {out}");
    assert_eq!(verify(out.as_bytes(), &txts), vec![DkimResult::Pass]);
    let added = out.replace("Subject: Order 42\r\n", "Subject: Order 42\r\nX-Fastpath-Tel: 050-9999-0000\r\n");
    assert!(matches!(verify(added.as_bytes(), &txts)[..], [DkimResult::Fail(_)]), "{added}");
}

#[test]
fn from_is_over_signed_so_a_second_from_breaks_it() {
    let keys = vec![key("a.example", "s2026", RSA_PKCS8)];
    let out = signed(&signers(keys.clone()), MESSAGE);
    let h = out.split("h=").nth(1).unwrap().split(';').next().unwrap().replace([' ', '\t', '\r', '\n'], "");
    assert_eq!(h.split(':').filter(|f| f.eq_ignore_ascii_case("From")).count(), 2, "{h}");
    let forged = format!("From: ceo@a.example\r\n{out}");
    // The added From sits above the signature, where a reader's client shows it.
    assert!(matches!(verify(forged.as_bytes(), &records(&keys))[..], [DkimResult::Fail(_)]), "{forged}");
}

#[test]
fn the_key_is_chosen_by_the_from_domain_in_any_case() {
    let s = signers(vec![key("A.Example", "s2026", ED25519)]);
    assert!(s.sign(MESSAGE.replace("taro@a.example", "taro@A.EXAMPLE").as_bytes()).is_some());
    assert!(s.sign(MESSAGE.as_bytes()).is_some());
    // A subdomain without a key of its own uses its parent's; a look-alike or another
    // domain gets nothing.
    assert!(s.sign(MESSAGE.replace("taro@a.example", "taro@mail.a.example").as_bytes()).is_some());
    assert!(s.sign(MESSAGE.replace("taro@a.example", "taro@xa.example").as_bytes()).is_none());
    assert!(s.sign(MESSAGE.replace("taro@a.example", "taro@c.example").as_bytes()).is_none());
    // Nothing to choose by: no From, two From fields, two domains in one From.
    assert!(s.sign(MESSAGE.replace("From: Taro <taro@a.example>\r\n", "").as_bytes()).is_none());
    assert!(s.sign(format!("From: x@a.example\r\n{MESSAGE}").as_bytes()).is_none());
    assert!(s.sign(MESSAGE.replace("<taro@a.example>", "<taro@a.example>, eve@c.example").as_bytes()).is_none());
    assert!(s.sign(MESSAGE.replace("<taro@a.example>", "<taro@a.example>, jiro@a.example").as_bytes()).is_some());
    assert!(Signers::new(&Dkim::default()).unwrap().sign(MESSAGE.as_bytes()).is_none());
}

#[test]
fn signers_do_not_show_secrets_in_debug_output() {
    let s = format!("{:?}", signers(vec![key("a.example", "s2026", RSA_PKCS8), key("a.example", "ed", ED25519)]));
    assert_eq!(s, "Signers { keys: [\"a.example ed Ed25519\", \"a.example s2026 RSA\"] }");
}

#[test]
fn selectors_and_field_names_are_checked() {
    for good in ["s2026", "mail.2026-01", "a"] {
        assert!(check_selector(good).is_ok(), "{good}");
    }
    for bad in ["", "-s", "s-", "s..t", "s_1", "s 1", "s\r\nX: y", "sélecteur"] {
        assert!(check_selector(bad).is_err(), "{bad:?}");
    }
    assert!(is_field_name("X-Fastpath-Tel"));
    assert!(!is_field_name("Bad:Name") && !is_field_name("") && !is_field_name("Two words"));
    assert!(check_domain("a.example").is_ok());
    assert!(check_domain("a.example.").is_err() && check_domain("a..example").is_err());
}

fn config_errors(text: &str) -> String {
    Config::from_toml(text).unwrap_err().to_string()
}

#[test]
fn config_keys_are_read_at_load_and_every_problem_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key").unwrap();
    let text = format!(
        "[[dkim.keys]]\ndomain = \"a.example\"\nselector = \"s2026\"\nkey = {rsa:?}\n\
         [[dkim.keys]]\ndomain = \"A.EXAMPLE\"\nselector = \"s2027\"\nkey = {rsa:?}\n\
         [[dkim.keys]]\ndomain = \"a.example\"\nselector = \"ed\"\nkey = {ed:?}\n\
         [[dkim.keys]]\ndomain = \"b.example\"\nselector = \"bad selector\"\nkey = \"/no/such/key.pem\"\n\
         [[dkim.keys]]\ndomain = \"c.example.\"\nselector = \"s\"\nkey = {garbage:?}\n",
        rsa = testdata(RSA_PKCS8),
        ed = testdata(ED25519),
    );
    let err = config_errors(&text);
    for needle in [
        "dkim.keys \"A.EXAMPLE\" (selector \"s2027\"): duplicate domain: selector \"s2026\" already has an RSA key",
        "dkim.keys \"b.example\" (selector \"bad selector\"): bad selector:",
        "dkim.keys \"b.example\" (selector \"bad selector\"): cannot read key file /no/such/key.pem",
        "dkim.keys \"c.example.\" (selector \"s\"): bad domain:",
        "dkim.keys \"c.example.\" (selector \"s\"): key file",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in {err}");
    }
    assert_eq!(err.matches("dkim.keys").count(), 5, "an RSA and an Ed25519 key for one domain are fine: {err}");
}

#[test]
fn config_headers_must_include_from_and_be_field_names() {
    let err = config_errors("[dkim]\nheaders = [\"To\", \"Sub ject\"]\n");
    assert!(err.contains("dkim.headers: must include From"), "{err}");
    assert!(err.contains("dkim.headers: \"Sub ject\" is not a header field name"), "{err}");
    let c = Config::from_toml("[dkim]\nheaders = [\"from\", \"subject\"]\n").unwrap();
    assert_eq!(c.dkim.headers, vec!["from", "subject"]);
    assert!(Config::default().dkim.headers.iter().any(|h| h == "X-Fastpath-Tel"));
}
