//! The routing table commands in the two-backend script: every `route`, `keyword` and `prefix`
//! command, good input and bad, text and JSON. Both runs start from the same store (the default
//! prefixes, empty tables) and read the same CSV files.

use std::path::{Path, PathBuf};

use super::{Cmd, JSON, TEXT};
use crate::cli::keyword::KeywordCommand as K;
use crate::cli::prefix::PrefixCommand as P;
use crate::cli::queue::Format;
use crate::cli::route::RouteCommand as R;

/// A CSV file with three bad lines (2, 4 and 6) among good ones.
const BAD: &str = "key,number,name\n\
                   good@efg.com,050-0000-0001\n\
                   bad-number@efg.com,03-1234-5678\n\
                   # a comment\n\
                   @efg.com,050-0000-0002\n\
                   \n\
                   efg.com,050-0000-0003,\"unterminated\n";
/// Good routes: one new, one that replaces an entry the script added before.
const GOOD: &str = "# routes\nhij.example,０５０－２２２２－３３３３,\"Osaka, main\"\nabc@efg.com,+81 50 1234 5678\n";
/// Keywords, one of them in another case than the entry it replaces.
const KEYWORDS: &str = "京都支店,080-1111-2222\nkyotobranchoffice,050-9999-0000,second\n";
const KYOTO: &str = "To: nobody@nowhere.example\r\nSubject: =?UTF-8?B?5Lqs6YO95pSv5bqX?= meeting\r\n\r\nSee you.\r\n";

pub(super) fn write_files(dir: &Path) {
    for (name, text) in [("bad.csv", BAD), ("good.csv", GOOD), ("keywords.csv", KEYWORDS), ("kyoto.eml", KYOTO)] {
        std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("writing {name}: {e}"));
    }
}

fn add(key: &str, number: &str, name: Option<&str>, format: Format) -> Cmd {
    Cmd::Route(R::Add { key: key.into(), number: number.into(), name: name.map(Into::into), format })
}

fn explain(rcpt: &str, message: Option<PathBuf>, format: Format) -> Cmd {
    Cmd::Route(R::Explain { rcpt: rcpt.into(), message, format })
}

fn keyword(keyword: &str, number: &str, format: Format) -> Cmd {
    Cmd::Keyword(K::Add { keyword: keyword.into(), number: number.into(), name: None, format })
}

pub(super) fn commands(dir: &Path) -> Vec<(&'static str, Cmd)> {
    let file = |name: &str| -> PathBuf { dir.join(name) };
    vec![
        ("prefix list", Cmd::Prefix(P::List { format: TEXT })),
        ("prefix list json", Cmd::Prefix(P::List { format: JSON })),
        ("route list empty", Cmd::Route(R::List { format: TEXT })),
        ("route add", add("abc@efg.com", "０５０－１２３４－５６７８", Some("Kyoto office"), TEXT)),
        ("route add domain", add("EFG.com", "+81-80-0000-9999", None, TEXT)),
        ("route add replace", add("ABC@EFG.COM", "050-1111-2222", None, TEXT)),
        ("route add json", add("xyz@efg.com", "05099990000", Some("X"), JSON)),
        ("route add bad number", add("efg.com", "03-1234-5678", None, TEXT)),
        ("route add other country", add("efg.com", "+1 650 555 0100", None, TEXT)),
        ("route add bad address", add("abc@", "050-1234-5678", None, TEXT)),
        ("route add bad domain", add("efg..com", "050-1234-5678", None, TEXT)),
        ("route add bad name", add("efg.com", "050-1234-5678", Some("a\u{7}b"), TEXT)),
        ("route list", Cmd::Route(R::List { format: TEXT })),
        ("route list json", Cmd::Route(R::List { format: JSON })),
        ("route rm", Cmd::Route(R::Rm { key: "XYZ@efg.com".into(), format: TEXT })),
        ("route rm again", Cmd::Route(R::Rm { key: "xyz@efg.com".into(), format: TEXT })),
        ("route rm bad", Cmd::Route(R::Rm { key: "@".into(), format: TEXT })),
        ("route import bad", Cmd::Route(R::Import { file: file("bad.csv"), format: TEXT })),
        ("route import missing", Cmd::Route(R::Import { file: file("missing.csv"), format: TEXT })),
        ("route list after bad import", Cmd::Route(R::List { format: TEXT })),
        ("route import", Cmd::Route(R::Import { file: file("good.csv"), format: TEXT })),
        ("route import json", Cmd::Route(R::Import { file: file("good.csv"), format: JSON })),
        ("route export", Cmd::Route(R::Export { format: TEXT })),
        ("route export json", Cmd::Route(R::Export { format: JSON })),
        ("route rm json", Cmd::Route(R::Rm { key: "hij.example".into(), format: JSON })),
        ("keyword add", keyword("KYOTOBRANCHOFFICE", "050-1234-5678", TEXT)),
        ("keyword add other case", keyword("KyotoBranchOffice", "050-1234-5679", TEXT)),
        ("keyword add json", keyword("#tag", "080 1234 5678", JSON)),
        ("keyword add empty", keyword(" ", "050-1234-5678", TEXT)),
        ("keyword add too long", keyword(&"k".repeat(257), "050-1234-5678", TEXT)),
        ("keyword add bad number", keyword("OSAKA", "0120-123-456", TEXT)),
        ("keyword import", Cmd::Keyword(K::Import { file: file("keywords.csv"), format: TEXT })),
        ("keyword import bad", Cmd::Keyword(K::Import { file: file("bad.csv"), format: JSON })),
        ("route explain address", explain("ABC@efg.com", None, TEXT)),
        ("route explain domain", explain("someone@efg.com", None, TEXT)),
        ("route explain local", explain("postmaster@localhost", None, TEXT)),
        ("route explain relay", explain("nobody@nowhere.example", None, TEXT)),
        ("route explain number", explain("050-2222-3333@gw.example", None, JSON)),
        ("route explain message", explain("nobody@nowhere.example", Some(file("kyoto.eml")), TEXT)),
        ("route explain missing message", explain("nobody@nowhere.example", Some(file("missing.eml")), TEXT)),
        ("keyword list", Cmd::Keyword(K::List { format: TEXT })),
        ("keyword list json", Cmd::Keyword(K::List { format: JSON })),
        ("keyword export", Cmd::Keyword(K::Export { format: TEXT })),
        ("keyword export json", Cmd::Keyword(K::Export { format: JSON })),
        ("keyword rm", Cmd::Keyword(K::Rm { keyword: "kyotoBRANCHoffice".into(), format: TEXT })),
        ("keyword rm again", Cmd::Keyword(K::Rm { keyword: "kyotobranchoffice".into(), format: TEXT })),
        ("keyword rm json", Cmd::Keyword(K::Rm { keyword: "#tag".into(), format: JSON })),
        ("prefix add", Cmd::Prefix(P::Add { digits: "０５６".into(), length: 7, format: TEXT })),
        ("prefix add same", Cmd::Prefix(P::Add { digits: "056".into(), length: 7, format: TEXT })),
        ("prefix add change", Cmd::Prefix(P::Add { digits: "056".into(), length: 8, format: TEXT })),
        ("prefix add json", Cmd::Prefix(P::Add { digits: "0570".into(), length: 6, format: JSON })),
        ("prefix add no trunk 0", Cmd::Prefix(P::Add { digits: "56".into(), length: 8, format: TEXT })),
        ("prefix add too long", Cmd::Prefix(P::Add { digits: "050".into(), length: 13, format: TEXT })),
        ("route add new prefix", add("new.example", "056-1234-5678", None, TEXT)),
        ("prefix rm", Cmd::Prefix(P::Rm { digits: "0570".into(), format: TEXT })),
        ("prefix rm in use", Cmd::Prefix(P::Rm { digits: "080".into(), format: TEXT })),
        ("prefix rm json", Cmd::Prefix(P::Rm { digits: "056".into(), format: JSON })),
        ("prefix rm again", Cmd::Prefix(P::Rm { digits: "080".into(), format: TEXT })),
        ("route list without 080", Cmd::Route(R::List { format: TEXT })),
        ("route add under removed prefix", add("efg.com", "080-0000-9999", None, TEXT)),
        ("prefix add back", Cmd::Prefix(P::Add { digits: "080".into(), length: 8, format: TEXT })),
        ("prefix list after", Cmd::Prefix(P::List { format: TEXT })),
    ]
}

/// Entries carry the second they were added, which differs between the two runs: zero it in
/// JSON output so the rest can be compared byte for byte.
pub(super) fn timeless(printed: String) -> String {
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&printed) else {
        return printed;
    };
    fn zero(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if k == "added" && v.is_u64() && v.as_u64() > Some(1_000_000) {
                        *v = 0.into();
                    } else {
                        zero(v);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(zero),
            _ => {}
        }
    }
    zero(&mut value);
    serde_json::to_string_pretty(&value).map(|s| s + "\n").unwrap_or(printed)
}

/// Spot checks that the table commands did what they say.
pub(super) fn check(printed: &[(&str, String)], dir: &Path) {
    let out = |label: &str| printed.iter().find(|(l, _)| *l == label).map(|(_, o)| o.as_str()).unwrap_or_else(|| panic!("no {label}"));
    let file = |name: &str| dir.join(name).display().to_string();
    assert_eq!(out("prefix list"), "050 + 8 digits\n080 + 8 digits\n-- 2 prefixes\n");
    assert_eq!(out("route list empty"), "-- 0 routes\n");
    assert_eq!(out("route add"), "added route abc@efg.com -> +815012345678 (Kyoto office)\n");
    assert_eq!(out("route add domain"), "added route efg.com -> +818000009999\n");
    assert_eq!(out("route add replace"), "replaced route abc@efg.com -> +815011112222 (was +815012345678)\n");
    let set: crate::tables::EntrySet = serde_json::from_str(out("route add json")).unwrap();
    assert_eq!((set.entry.key.as_str(), set.entry.tel.0.as_str()), ("xyz@efg.com", "+815099990000"));
    assert_eq!(out("route add bad number"), "error: \"03-1234-5678\" is not a number with a known prefix (050 + 8 digits, 080 + 8 digits)");
    assert_eq!(out("route add other country"), "error: \"+1 650 555 0100\" is not in country code +81");
    assert_eq!(out("route add bad address"), "error: \"abc@\" is not a valid address: the domain is empty");
    assert!(out("route add bad domain").starts_with("error: \"efg..com\" is not a valid domain: has an empty label"));
    assert_eq!(out("route add bad name"), "error: \"a\\u{7}b\" is not a valid name: it contains control characters");
    assert_eq!(
        out("route list"),
        "abc@efg.com  +815011112222  050-1111-2222\n\
         efg.com      +818000009999  080-0000-9999\n\
         xyz@efg.com  +815099990000  050-9999-0000  X\n\
         -- 3 routes\n"
    );
    assert_eq!(out("route rm"), "removed route xyz@efg.com (was +815099990000)\n");
    let explained = out("route explain address");
    assert!(
        explained.starts_with("recipient: ABC@efg.com\nroute:     fast path to +815012345678 (050-1234-5678)\nevidence:  "),
        "{explained}"
    );
    assert!(explained.contains("abc@efg.com"), "{explained}");
    assert!(
        out("route explain domain").contains("route:     fast path to +818000009999 (080-0000-9999)"),
        "{}",
        out("route explain domain")
    );
    assert!(out("route explain local").contains("route:     local delivery"), "{}", out("route explain local"));
    let relay = out("route explain relay");
    assert!(relay.contains("route:     relay (hop-by-hop SMTP)") && relay.contains("no --message given"), "{relay}");
    let number: crate::routing::Explanation = serde_json::from_str(out("route explain number")).unwrap();
    assert_eq!(number.route, sipmta_rules::Route::Fast { tel: "+815022223333".into() });
    let message = out("route explain message");
    assert!(message.contains("route:     fast path to +818011112222 (080-1111-2222)") && message.contains("京都支店"), "{message}");
    assert!(out("route explain missing message").starts_with("error: reading "), "{}", out("route explain missing message"));
    assert_eq!(out("route rm again"), "error: no such route: xyz@efg.com");
    assert_eq!(
        out("route import bad"),
        format!(
            "error: importing {}: 3 bad lines, no route imported:\n  \
             line 3: \"03-1234-5678\" is not a number with a known prefix (050 + 8 digits, 080 + 8 digits)\n  \
             line 5: \"@efg.com\" is not a valid address: the local part before the @ is empty\n  \
             line 7: field 3 has an opening quote but no closing one",
            file("bad.csv")
        )
    );
    assert!(out("route import missing").starts_with(&format!("error: reading {}: ", file("missing.csv"))));
    assert_eq!(
        out("route list after bad import"),
        "abc@efg.com  +815011112222  050-1111-2222\nefg.com      +818000009999  080-0000-9999\n-- 2 routes\n"
    );
    assert_eq!(out("route import"), format!("imported 2 routes from {}: 1 added, 1 replaced\n", file("good.csv")));
    assert_eq!(out("route import json"), "{\n  \"added\": 0,\n  \"updated\": 2\n}\n");
    assert_eq!(
        out("route export"),
        "key,number,name\nabc@efg.com,+815012345678\nefg.com,+818000009999\nhij.example,+815022223333,\"Osaka, main\"\n"
    );
    assert_eq!(out("keyword add other case"), "replaced keyword KyotoBranchOffice -> +815012345679 (was +815012345678)\n");
    assert_eq!(out("keyword add empty"), "error: \" \" is not a valid keyword: it is empty");
    assert!(out("keyword add too long").ends_with("is not a valid keyword: it is longer than 256 characters"));
    assert!(out("keyword add bad number").starts_with("error: \"0120-123-456\" is not a number with a known prefix"));
    assert_eq!(out("keyword import"), format!("imported 2 keywords from {}: 1 added, 1 replaced\n", file("keywords.csv")));
    // As keywords, "@efg.com" and "good@efg.com" are fine: two bad lines.
    let bad = out("keyword import bad");
    assert!(bad.starts_with(&format!("error: importing {}: 2 bad lines, no keyword imported:\n  line 3: ", file("bad.csv"))), "{bad}");
    assert!(bad.ends_with("\n  line 7: field 3 has an opening quote but no closing one"), "{bad}");
    assert_eq!(
        out("keyword list"),
        "#tag               +818012345678  080-1234-5678\n\
         kyotobranchoffice  +815099990000  050-9999-0000  second\n\
         京都支店           +818011112222  080-1111-2222\n\
         -- 3 keywords\n"
    );
    assert_eq!(
        out("keyword export"),
        "key,number,name\n\"#tag\",+818012345678\nkyotobranchoffice,+815099990000,second\n京都支店,+818011112222\n"
    );
    assert_eq!(out("keyword rm"), "removed keyword kyotobranchoffice (was +815099990000)\n");
    assert_eq!(out("keyword rm again"), "error: no such keyword: kyotobranchoffice");
    assert_eq!(out("prefix add"), "added prefix 056 + 7 digits\n");
    assert_eq!(out("prefix add same"), "prefix 056 + 7 digits unchanged\n");
    assert_eq!(out("prefix add change"), "changed prefix 056 to + 8 digits (was + 7)\n");
    assert!(out("prefix add no trunk 0").contains("a national prefix starts with the trunk prefix 0"), "{}", out("prefix add no trunk 0"));
    assert_eq!(out("prefix add too long"), "error: \"13\" is not a valid prefix length: 050 + 13 digits is not a possible E.164 number");
    assert_eq!(out("route add new prefix"), "added route new.example -> +815612345678\n");
    assert_eq!(out("prefix rm"), "removed prefix 0570 + 6 digits\n");
    assert_eq!(out("prefix rm in use"), "removed prefix 080 + 8 digits; 2 routes and keywords still hold numbers under it\n");
    let removed: crate::tables::PrefixRemoved = serde_json::from_str(out("prefix rm json")).unwrap();
    assert_eq!((removed.prefix.digits.as_str(), removed.in_use), ("056", 1));
    assert_eq!(out("prefix rm again"), "error: no such prefix: 080");
    assert!(out("route list without 080").contains("\nefg.com      +818000009999  -\n"), "{}", out("route list without 080"));
    assert!(
        out("route add under removed prefix").starts_with("error: \"080-0000-9999\" is not a number with a known prefix (050 + 8 digits)")
    );
    assert_eq!(out("prefix list after"), "050 + 8 digits\n080 + 8 digits\n-- 2 prefixes\n");
}
