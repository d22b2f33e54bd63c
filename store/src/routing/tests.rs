//! Routing table tests at the level of the store: each change is flushed and the store
//! reopened, so what is checked is what reached the disk.

#![allow(clippy::unwrap_used)]

use super::*;

fn tel(s: &str) -> E164 {
    E164(s.into())
}

fn reopen(dir: &std::path::Path) -> Store {
    Store::open(dir).unwrap().0
}

fn keys(entries: &[TableEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.key.as_str()).collect()
}

fn invalid_reason(e: StoreError) -> String {
    match e {
        StoreError::InvalidEntry { .. } => e.to_string(),
        other => panic!("expected InvalidEntry, got {other:?}"),
    }
}

#[test]
fn default_prefixes_are_seeded_once_and_a_removal_sticks() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = reopen(dir.path());
        let want = NumberPlan::default().prefixes;
        assert_eq!(store.prefixes().unwrap(), want);
        assert_eq!(store.remove_prefix("０５０").unwrap(), Prefix { digits: "050".into(), length: 8 });
        store.flush().unwrap();
    }
    let store = reopen(dir.path());
    assert_eq!(store.prefixes().unwrap(), vec![Prefix { digits: "080".into(), length: 8 }]);
    let plan = store.number_plan("81").unwrap();
    assert_eq!(plan.normalise("080-1234-5678").unwrap(), tel("+818012345678"));
    assert!(plan.normalise("050-1234-5678").is_err());
    // Removing every prefix leaves none: the defaults do not come back either.
    store.remove_prefix("080").unwrap();
    store.flush().unwrap();
    drop(store);
    assert!(reopen(dir.path()).prefixes().unwrap().is_empty());
}

#[test]
fn prefixes_are_added_changed_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = reopen(dir.path());
        assert_eq!(store.set_prefix("０５６", 7).unwrap(), None);
        assert_eq!(store.set_prefix("050", 9).unwrap(), Some(8));
        store.flush().unwrap();
    }
    let store = reopen(dir.path());
    let listed: Vec<(String, u8)> = store.prefixes().unwrap().into_iter().map(|p| (p.digits, p.length)).collect();
    assert_eq!(listed, vec![("050".into(), 9), ("056".into(), 7), ("080".into(), 8)]);
    assert_eq!(store.number_plan("44").unwrap().normalise("056 1234567").unwrap(), tel("+44561234567"));
    for (digits, length, why) in [
        ("50", 8, "starts with the trunk prefix 0"),
        ("05a", 8, "digits only"),
        ("", 8, "digits only"),
        ("0", 8, "2 to 8 digits"),
        ("012345678", 4, "2 to 8 digits"),
        ("050", 0, "not a possible E.164 number"),
        ("050", 13, "not a possible E.164 number"),
    ] {
        let reason = invalid_reason(store.set_prefix(digits, length).unwrap_err());
        assert!(reason.contains(why), "{digits} {length}: {reason}");
    }
    assert_eq!(store.remove_prefix("099").unwrap_err().to_string(), "no such prefix: 099");
}

#[test]
fn routes_are_added_replaced_removed_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = reopen(dir.path());
        let (added, replaced) = store.set_entry(Table::Routes, "ABC@EFG.com", tel("+815012345678"), Some(" Kyoto ")).unwrap();
        assert_eq!((added.key.as_str(), added.name.as_deref(), replaced), ("abc@efg.com", Some("Kyoto"), None));
        assert_eq!(store.set_entry(Table::Routes, "efg.com.", tel("+818000009999"), None).unwrap().1, None);
        let old = store.set_entry(Table::Routes, "abc@efg.COM", tel("+815011112222"), None).unwrap().1.unwrap();
        assert_eq!((old.key.as_str(), old.tel.0.as_str(), old.name.as_deref()), ("abc@efg.com", "+815012345678", Some("Kyoto")));
        store.flush().unwrap();
    }
    let store = reopen(dir.path());
    let routes = store.entries(Table::Routes).unwrap();
    assert_eq!(keys(&routes), ["abc@efg.com", "efg.com"]);
    assert_eq!(routes[0].tel, tel("+815011112222"));
    assert_eq!(routes[0].name, None);
    assert!(routes[0].added > 0);
    assert_eq!(store.entry(Table::Routes, "EFG.COM").unwrap().unwrap().tel, tel("+818000009999"));
    assert_eq!(store.remove_entry(Table::Routes, "Abc@Efg.com").unwrap().tel, tel("+815011112222"));
    assert_eq!(store.remove_entry(Table::Routes, "abc@efg.com").unwrap_err().to_string(), "no such route: abc@efg.com");
    store.flush().unwrap();
    drop(store);
    assert_eq!(keys(&reopen(dir.path()).entries(Table::Routes).unwrap()), ["efg.com"]);
}

#[test]
fn bad_route_keys_and_names_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let store = reopen(dir.path());
    for (key, why) in [
        ("@efg.com", "\"@efg.com\" is not a valid address: the local part before the @ is empty"),
        ("abc@", "\"abc@\" is not a valid address: the domain is empty"),
        ("abc@efg..com", "the domain has an empty label"),
        ("a b@efg.com", "contains spaces or control characters"),
        ("<abc@efg.com>", "without angle brackets"),
        ("efg com", "\"efg com\" is not a valid domain: contains ' '"),
        ("-efg.com", "starts or ends with a hyphen"),
        ("", "\"\" is not a valid domain: is empty"),
        (&format!("{}@efg.com", "x".repeat(65)), "longer than 64 octets"),
    ] {
        let reason = invalid_reason(store.set_entry(Table::Routes, key, tel("+815012345678"), None).unwrap_err());
        assert!(reason.contains(why), "{key}: {reason}");
    }
    let long = "名".repeat(257);
    let reason = invalid_reason(store.set_entry(Table::Routes, "efg.com", tel("+815012345678"), Some(&long)).unwrap_err());
    assert!(reason.contains("longer than 256 characters"), "{reason}");
    let reason = invalid_reason(store.set_entry(Table::Routes, "efg.com", tel("+815012345678"), Some("a\tb")).unwrap_err());
    assert!(reason.contains("control characters"), "{reason}");
    assert!(store.entries(Table::Routes).unwrap().is_empty());
    // Japanese domains (IDNs) are domains; a leading dot means the subdomains of one.
    store.set_entry(Table::Routes, "京都.example", tel("+815012345678"), Some(&"名".repeat(256))).unwrap();
    assert_eq!(store.set_entry(Table::Routes, ".EFG.com.", tel("+815012345678"), None).unwrap().0.key, ".efg.com");
    for key in [".", "..efg.com", "abc@.efg.com"] {
        let reason = invalid_reason(store.set_entry(Table::Routes, key, tel("+815012345678"), None).unwrap_err());
        assert!(reason.contains("empty"), "{key}: {reason}");
    }
}

#[test]
fn keywords_are_unique_without_regard_to_case_and_keep_their_spelling() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = reopen(dir.path());
        store.set_entry(Table::Keywords, "KYOTOBRANCHOFFICE", tel("+815012345678"), None).unwrap();
        store.set_entry(Table::Keywords, "京都支店", tel("+815000001111"), None).unwrap();
        let (new, old) = store.set_entry(Table::Keywords, " KyotoBranchOffice ", tel("+815099998888"), None).unwrap();
        assert_eq!((new.key.as_str(), old.unwrap().key.as_str()), ("KyotoBranchOffice", "KYOTOBRANCHOFFICE"));
        store.flush().unwrap();
    }
    let store = reopen(dir.path());
    let keywords = store.entries(Table::Keywords).unwrap();
    assert_eq!(keys(&keywords), ["KyotoBranchOffice", "京都支店"]);
    assert_eq!(store.entry(Table::Keywords, "kyotobranchoffice").unwrap().unwrap().tel, tel("+815099998888"));
    for (keyword, why) in [("", "it is empty"), ("  ", "it is empty"), ("a\u{7}b", "control characters")] {
        let reason = invalid_reason(store.set_entry(Table::Keywords, keyword, tel("+815012345678"), None).unwrap_err());
        assert!(reason.contains(why), "{keyword:?}: {reason}");
    }
    let reason = invalid_reason(store.set_entry(Table::Keywords, &"k".repeat(257), tel("+815012345678"), None).unwrap_err());
    assert!(reason.contains("longer than 256 characters"), "{reason}");
    store.set_entry(Table::Keywords, &"k".repeat(256), tel("+815012345678"), None).unwrap();
    assert_eq!(store.remove_entry(Table::Keywords, "KYOTObranchOFFICE").unwrap().key, "KyotoBranchOffice");
    assert_eq!(store.remove_entry(Table::Keywords, "nothing").unwrap_err().to_string(), "no such keyword: nothing");
}

#[test]
fn an_import_is_all_or_nothing_and_counts_what_it_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let row = |k: &str, t: &str| (k.to_owned(), tel(t), None);
    {
        let store = reopen(dir.path());
        store.set_entry(Table::Routes, "old@efg.com", tel("+815000000000"), None).unwrap();
        // One bad key among good ones: nothing is written.
        let err = store.import_entries(Table::Routes, vec![row("a@efg.com", "+815000000001"), row("bad@", "+815000000002")]).unwrap_err();
        assert!(matches!(err, StoreError::InvalidEntry { .. }), "{err:?}");
        assert_eq!(keys(&store.entries(Table::Routes).unwrap()), ["old@efg.com"]);

        let imported = store
            .import_entries(
                Table::Routes,
                vec![
                    row("a@efg.com", "+815000000001"),
                    ("OLD@efg.com".into(), tel("+815000000003"), Some("renumbered".into())),
                    row("hij.example", "+815000000004"),
                    // A repeat within the import: the last one wins, counted once.
                    row("hij.example", "+815000000005"),
                ],
            )
            .unwrap();
        assert_eq!(imported, Imported { added: 2, updated: 1 });
        store.flush().unwrap();
    }
    let store = reopen(dir.path());
    let routes = store.entries(Table::Routes).unwrap();
    let got: Vec<(&str, &str)> = routes.iter().map(|e| (e.key.as_str(), e.tel.0.as_str())).collect();
    assert_eq!(got, [("a@efg.com", "+815000000001"), ("hij.example", "+815000000005"), ("old@efg.com", "+815000000003")]);
    assert_eq!(routes[2].name.as_deref(), Some("renumbered"));
}

#[test]
fn a_large_import_is_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = reopen(dir.path());
    let rows: Vec<_> = (0..20_000).map(|i| (format!("KW{i}"), tel(&format!("+8150{i:08}")), None)).collect();
    let started = std::time::Instant::now();
    assert_eq!(store.import_entries(Table::Keywords, rows).unwrap(), Imported { added: 20_000, updated: 0 });
    store.flush().unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "{:?}", started.elapsed());
    assert_eq!(store.entries(Table::Keywords).unwrap().len(), 20_000);
}

#[test]
fn learned_numbers_are_listed_and_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = reopen(dir.path());
        store.learn("Taro@Example.jp", tel("+815012345678"), "X-Fastpath-Tel of message 0000000100000001").unwrap();
        store.learn("hanako@example.jp", tel("+818012345678"), "signature").unwrap();
        let reason = invalid_reason(store.learn("example.jp", tel("+815012345678"), "x").unwrap_err());
        assert!(reason.contains("belongs to an address, not a domain"), "{reason}");
        store.flush().unwrap();
    }
    let store = reopen(dir.path());
    let learned = store.learned().unwrap();
    assert_eq!(learned.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(), ["hanako@example.jp", "taro@example.jp"]);
    assert_eq!(learned[1].1.evidence, "X-Fastpath-Tel of message 0000000100000001");
    assert!(learned[1].1.at > 0);
    assert!(store.forget("TARO@example.jp").unwrap());
    assert!(!store.forget("taro@example.jp").unwrap());
    assert_eq!(store.learned().unwrap().len(), 1);
}

#[test]
fn learned_numbers_expire_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let store = reopen(dir.path());
    store.learn("taro@example.jp", tel("+815012345678"), "DKIM").unwrap();
    assert_eq!(store.learned_entry("TARO@example.jp").unwrap().unwrap().tel, tel("+815012345678"));
    assert_eq!(store.learned_entry("hanako@example.jp").unwrap(), None);
    let at = store.learned_entry("taro@example.jp").unwrap().unwrap().at;
    let generation = store.tables_generation();
    // Learned at `at`: a cutoff at that second keeps it, one past it forgets it.
    assert!(store.expire_learned(at).unwrap().is_empty());
    assert_eq!(store.tables_generation(), generation, "nothing expired, the tables did not change");
    assert_eq!(store.expire_learned(at + 1).unwrap(), ["taro@example.jp"]);
    assert!(store.tables_generation() > generation);
    assert!(store.learned().unwrap().is_empty());
}

#[test]
fn a_corrupt_entry_is_reported_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = reopen(dir.path());
    store.inner.routes.insert("efg.com", &b"{not json"[..]).unwrap();
    store.inner.prefixes.insert("050", &b"x"[..]).unwrap();
    assert!(matches!(store.entries(Table::Routes), Err(StoreError::Corrupt { tree: ROUTES, .. })));
    assert!(matches!(store.entry(Table::Routes, "efg.com"), Err(StoreError::Corrupt { .. })));
    assert!(matches!(store.number_plan("81"), Err(StoreError::Corrupt { tree: PREFIXES, .. })));
}
