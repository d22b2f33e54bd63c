//! The table operations on a real store: numbers checked against the stored prefixes, imports
//! all or nothing, exports that import again, prefixes checked against the country code.

#![allow(clippy::unwrap_used)]

use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn new(key: &str, number: &str, name: Option<&str>) -> NewEntry {
    NewEntry { key: key.into(), number: number.into(), name: name.map(Into::into) }
}

#[test]
fn numbers_are_normalised_with_the_stored_prefixes() {
    let (_dir, store) = store();
    let set = add(&store, "81", Table::Routes, &new("ABC@efg.com", "０５０－１２３４－５６７８", Some("Kyoto"))).unwrap();
    assert_eq!((set.entry.key.as_str(), set.entry.tel.0.as_str(), set.replaced), ("abc@efg.com", "+815012345678", None));
    let set = add(&store, "81", Table::Routes, &new("abc@efg.com", "+81 80 0000 9999", None)).unwrap();
    assert_eq!(set.replaced.unwrap().tel.0, "+815012345678");
    let err = add(&store, "81", Table::Routes, &new("efg.com", "03-1234-5678", None)).unwrap_err();
    assert!(err.is_refusal());
    assert_eq!(err.to_string(), "\"03-1234-5678\" is not a number with a known prefix (050 + 8 digits, 080 + 8 digits)");
    // A bad key is reported before a bad number.
    let err = add(&store, "81", Table::Routes, &new("abc@", "03", None)).unwrap_err();
    assert_eq!(err.to_string(), "\"abc@\" is not a valid address: the domain is empty");
    // A prefix added is used at once.
    add_prefix(&store, "81", "03", 8).unwrap();
    assert_eq!(add(&store, "81", Table::Routes, &new("efg.com", "03-1234-5678", None)).unwrap().entry.tel.0, "+81312345678");
    let err = remove(&store, Table::Routes, "nobody@efg.com").unwrap_err();
    assert_eq!((err.to_string().as_str(), err.is_refusal()), ("no such route: nobody@efg.com", true));
}

#[test]
fn an_import_with_bad_lines_reports_all_of_them_and_writes_nothing() {
    let (_dir, store) = store();
    add(&store, "81", Table::Routes, &new("keep@efg.com", "050-0000-0001", None)).unwrap();
    let text = "key,number,name\n\
                a@efg.com,050-1234-5678,A\n\
                b@efg.com,03-1234-5678\n\
                # a comment\n\
                @efg.com,050-1234-5679\n\
                A@EFG.com,050-1234-5670\n\
                c@efg.com,050-1234-5671,\"unterminated\n";
    let err = import(&store, "81", Table::Routes, text.as_bytes()).unwrap_err();
    assert!(err.is_refusal());
    assert_eq!(
        err.to_string(),
        "4 bad lines, no route imported:\n  \
         line 3: \"03-1234-5678\" is not a number with a known prefix (050 + 8 digits, 080 + 8 digits)\n  \
         line 5: \"@efg.com\" is not a valid address: the local part before the @ is empty\n  \
         line 6: route \"A@EFG.com\" is already on line 2\n  \
         line 7: field 3 has an opening quote but no closing one"
    );
    let keys: Vec<String> = list(&store, Table::Routes).unwrap().into_iter().map(|e| e.key).collect();
    assert_eq!(keys, ["keep@efg.com"]);
}

#[test]
fn a_good_import_replaces_same_keys_and_exports_back_the_same() {
    let (dir, store) = store();
    add(&store, "81", Table::Keywords, &new("KYOTO", "050-0000-0001", None)).unwrap();
    let text = "kyoto,050-1234-5678,\"Kyoto, main\"\n京都支店,０８０－１２３４－５６７８\n\"#tag\",+815011112222,x\n";
    assert_eq!(import(&store, "81", Table::Keywords, text.as_bytes()).unwrap(), ImportReport { added: 2, updated: 1 });
    let exported = export(&store, Table::Keywords).unwrap();
    assert_eq!(exported, "key,number,name\n\"#tag\",+815011112222,x\nkyoto,+815012345678,\"Kyoto, main\"\n京都支店,+818012345678\n");
    // The export imports again unchanged, into a fresh store too.
    drop(store);
    let (store, _) = Store::open(dir.path()).unwrap();
    assert_eq!(import(&store, "81", Table::Keywords, exported.as_bytes()).unwrap(), ImportReport { added: 0, updated: 3 });
    assert_eq!(export(&store, Table::Keywords).unwrap(), exported);
    let (_other, fresh) = self::store();
    assert_eq!(import(&fresh, "81", Table::Keywords, exported.as_bytes()).unwrap(), ImportReport { added: 3, updated: 0 });
    assert_eq!(export(&fresh, Table::Keywords).unwrap(), exported);
    assert_eq!(import(&fresh, "81", Table::Keywords, b"").unwrap(), ImportReport { added: 0, updated: 0 });
}

#[test]
fn prefixes_must_fit_e164_under_the_country_code() {
    let (_dir, store) = store();
    let set = add_prefix(&store, "81", "０５６", 7).unwrap();
    assert_eq!((set.prefix.digits.as_str(), set.prefix.length, set.previous), ("056", 7, None));
    assert_eq!(add_prefix(&store, "81", "050", 9).unwrap().previous, Some(8));
    // 81 + 50 + 12 digits = 16 digits.
    let err = add_prefix(&store, "81", "050", 12).unwrap_err();
    assert_eq!(err.to_string(), "050 + 12 digits makes 16-digit numbers with country code +81; E.164 allows 15");
    assert!(add_prefix(&store, "1", "050", 12).is_ok());
    let err = add_prefix(&store, "81", "50", 8).unwrap_err();
    assert!(err.to_string().contains("starts with the trunk prefix 0"), "{err}");
}

#[test]
fn removing_a_prefix_counts_the_entries_under_it() {
    let (_dir, store) = store();
    add(&store, "81", Table::Routes, &new("a@efg.com", "050-1234-5678", None)).unwrap();
    add(&store, "81", Table::Keywords, &new("kw", "050-1234-5679", None)).unwrap();
    add(&store, "81", Table::Routes, &new("b@efg.com", "080-1234-5678", None)).unwrap();
    let removed = remove_prefix(&store, "81", "０５０").unwrap();
    assert_eq!((removed.prefix.digits.as_str(), removed.prefix.length, removed.in_use), ("050", 8, 2));
    assert!(add(&store, "81", Table::Routes, &new("c@efg.com", "050-1234-5670", None)).is_err());
    let err = remove_prefix(&store, "81", "050").unwrap_err();
    assert_eq!(err.to_string(), "no such prefix: 050");
}

#[test]
fn national_forms_group_the_digits() {
    let plan = NumberPlan {
        country_code: "81".into(),
        prefixes: vec![Prefix { digits: "050".into(), length: 8 }, Prefix { digits: "0120".into(), length: 6 }],
    };
    let nat = |t: &str| national(&plan, &E164(t.into()));
    assert_eq!(nat("+815012345678").as_deref(), Some("050-1234-5678"));
    assert_eq!(nat("+81120123456").as_deref(), Some("0120-123-456"));
    assert_eq!(nat("+818012345678"), None);
    assert_eq!(nat("+15012345678"), None);
}
