//! The routing table endpoints on a running daemon: entries, imports, exports and prefixes,
//! the statuses they answer, and the larger body limit that only an authenticated import gets.

use sipmta_store::{Table, TableEntry};

use super::{api_error, blocking, raw, start, status};
use crate::tables::{EntrySet, ImportReport, NewEntry};

fn entry(key: &str, number: &str, name: Option<&str>) -> NewEntry {
    NewEntry { key: key.into(), number: number.into(), name: name.map(Into::into) }
}

#[tokio::test]
async fn entries_are_added_listed_replaced_and_removed() {
    let s = start(|_| {}).await;
    let c = s.client().await;
    let api = c.clone();
    let set =
        blocking(move || api.add_entry(Table::Routes, &entry("ABC@efg.com", "０５０－１２３４－５６７８", Some("Kyoto")))).await.unwrap();
    assert_eq!((set.entry.key.as_str(), set.entry.tel.0.as_str(), set.replaced), ("abc@efg.com", "+815012345678", None));
    // Durable and visible in the daemon's store at once.
    assert_eq!(s.store.entry(Table::Routes, "abc@efg.com").unwrap().unwrap().tel.0, "+815012345678");

    let body = serde_json::to_vec(&entry("abc@efg.com", "080-0000-9999", None)).unwrap();
    let api = c.clone();
    let replaced = blocking(move || api.raw("POST", "/routes", &body)).await.unwrap();
    assert_eq!(replaced.status, 200);
    let replaced: EntrySet = serde_json::from_slice(&replaced.body).unwrap();
    assert_eq!(replaced.replaced.unwrap().name.as_deref(), Some("Kyoto"));

    let api = c.clone();
    let (code, message) = api_error(blocking(move || api.add_entry(Table::Routes, &entry("efg.com", "03-1234-5678", None))).await);
    assert_eq!((code, message.as_str()), (400, "\"03-1234-5678\" is not a number with a known prefix (050 + 8 digits, 080 + 8 digits)"));
    let api = c.clone();
    let (code, message) = api_error(blocking(move || api.add_entry(Table::Routes, &entry("abc@", "050-1234-5678", None))).await);
    assert_eq!((code, message.as_str()), (400, "\"abc@\" is not a valid address: the domain is empty"));

    // Keywords: any characters, percent-encoded in the path; one entry whatever the case.
    let api = c.clone();
    blocking(move || api.add_entry(Table::Keywords, &entry("京都/支店?#1", "050-1111-2222", None))).await.unwrap();
    let api = c.clone();
    let kw = blocking(move || api.add_entry(Table::Keywords, &entry("KYOTO", "050-1111-3333", None))).await.unwrap();
    assert_eq!(kw.entry.key, "KYOTO");
    let api = c.clone();
    let kw = blocking(move || api.add_entry(Table::Keywords, &entry("Kyoto", "050-1111-4444", None))).await.unwrap();
    assert_eq!(kw.replaced.unwrap().key, "KYOTO");
    let api = c.clone();
    let keywords = blocking(move || api.entries(Table::Keywords)).await.unwrap();
    assert_eq!(keywords.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["Kyoto", "京都/支店?#1"]);
    let api = c.clone();
    let removed = blocking(move || api.remove_entry(Table::Keywords, "京都/支店?#1")).await.unwrap();
    assert_eq!(removed.tel.0, "+815011112222");
    let api = c.clone();
    assert_eq!(
        api_error(blocking(move || api.remove_entry(Table::Keywords, "京都/支店?#1")).await),
        (404, "no such keyword: 京都/支店?#1".into())
    );

    // "import" and "export" are keys too, for the methods that are not the table actions.
    let api = c.clone();
    blocking(move || api.add_entry(Table::Routes, &entry("import", "050-1234-0000", None))).await.unwrap();
    let api = c.clone();
    let gone: TableEntry = serde_json::from_slice(&blocking(move || api.raw("DELETE", "/routes/import", b"")).await.unwrap().body).unwrap();
    assert_eq!(gone.key, "import");
    let api = c.clone();
    let routes = blocking(move || api.entries(Table::Routes)).await.unwrap();
    assert_eq!(routes.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["abc@efg.com"]);
    for (method, path, allow) in [
        ("PUT", "/routes", "GET, POST"),
        ("GET", "/routes/abc@efg.com", "DELETE"),
        ("GET", "/keywords/import", "POST, DELETE"),
        ("POST", "/prefixes/050", "DELETE"),
    ] {
        let api = c.clone();
        let got = blocking(move || api.raw(method, path, b"")).await.unwrap();
        assert_eq!(got.status, 405, "{method} {path}");
        assert!(String::from_utf8_lossy(&got.body).contains(allow), "{method} {path}");
    }
    let api = c.clone();
    assert_eq!(
        blocking(move || api.raw("POST", "/routes", br#"{"key":"a.example","number":"050-1234-5678","tel":"x"}"#)).await.unwrap().status,
        400
    );
    s.stop().await;
}

#[tokio::test]
async fn imports_are_all_or_nothing_and_exports_are_csv() {
    let s = start(|_| {}).await;
    let c = s.client().await;
    let bad = b"a@efg.com,050-1234-5678\nb@efg.com,03-1234-5678\nefg..com,050-1234-5679\n\"open,050-1234-5670\n".to_vec();
    let api = c.clone();
    let (code, message) = api_error(blocking(move || api.import(Table::Routes, &bad)).await);
    assert_eq!(code, 400);
    assert!(message.starts_with("3 bad lines, no route imported:\n  line 2: "), "{message}");
    assert!(message.contains("\n  line 3: \"efg..com\" is not a valid domain") && message.contains("\n  line 4: "), "{message}");
    assert!(s.store.entries(Table::Routes).unwrap().is_empty());

    let good = "key,number,name\na@efg.com,050-1234-5678,\"Kyoto, main\"\nefg.com,+81 80 0000 9999\n";
    let api = c.clone();
    let report = blocking(move || api.import(Table::Routes, good.as_bytes())).await.unwrap();
    assert_eq!(report, ImportReport { added: 2, updated: 0 });
    let api = c.clone();
    let export = blocking(move || api.raw("GET", "/routes/export", b"")).await.unwrap();
    assert_eq!(export.status, 200);
    let csv = String::from_utf8(export.body).unwrap();
    assert_eq!(csv, "key,number,name\na@efg.com,+815012345678,\"Kyoto, main\"\nefg.com,+818000009999\n");
    let api = c.clone();
    assert_eq!(blocking(move || api.import(Table::Routes, csv.as_bytes())).await.unwrap(), ImportReport { added: 0, updated: 2 });
    let answer = raw(s.admin, format!("GET /routes/export HTTP/1.1\r\nAuthorization: Bearer {}\r\n\r\n", token(&s)).as_bytes()).await;
    assert!(answer.contains("\r\nContent-Type: text/csv; charset=utf-8\r\n"), "{answer}");
    s.stop().await;
}

fn token(s: &super::Running) -> String {
    std::fs::read_to_string(s.dir.path().join("admin.token")).unwrap()
}

#[tokio::test]
async fn only_an_authenticated_import_may_be_larger_than_64_kib() {
    let s = start(|_| {}).await;
    let c = s.client().await;
    let csv: String = (0..10_000).map(|i| format!("kw{i},050{i:08}\n")).collect();
    assert!(csv.len() > 64 * 1024);
    let api = c.clone();
    let body = csv.clone();
    assert_eq!(blocking(move || api.import(Table::Keywords, body.as_bytes())).await.unwrap(), ImportReport { added: 10_000, updated: 0 });
    assert_eq!(s.store.entries(Table::Keywords).unwrap().len(), 10_000);

    let request = |token: &str, path: &str, length: usize| {
        format!("POST {path} HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Length: {length}\r\n\r\n").into_bytes()
    };
    // Without the token the usual limit applies, so nobody else can make the daemon buffer it.
    let mut wrong = request("wrong", "/keywords/import", csv.len());
    wrong.extend_from_slice(csv.as_bytes());
    assert_eq!(status(&raw(s.admin, &wrong).await), "413");
    // Other endpoints keep the usual limit even with the token.
    let mut other = request(&token(&s), "/keywords", csv.len());
    other.extend_from_slice(csv.as_bytes());
    assert_eq!(status(&raw(s.admin, &other).await), "413");
    // And an import has its own limit, refused from the head alone.
    assert_eq!(status(&raw(s.admin, &request(&token(&s), "/routes/import", (16 << 20) + 1)).await), "413");
    s.stop().await;
}

#[tokio::test]
async fn prefixes_are_listed_added_and_removed_under_the_configured_country_code() {
    let s = start(|c| c.routing.country_code = "44".into()).await;
    let c = s.client().await;
    let api = c.clone();
    let digits: Vec<String> = blocking(move || api.prefixes()).await.unwrap().into_iter().map(|p| p.digits).collect();
    assert_eq!(digits, ["050", "080"]);
    let api = c.clone();
    let added = blocking(move || api.add_prefix("056", 7)).await.unwrap();
    assert_eq!((added.prefix.digits.as_str(), added.previous), ("056", None));
    let api = c.clone();
    let set = blocking(move || api.add_entry(Table::Routes, &entry("uk.example", "+44 56 1234567", None))).await.unwrap();
    assert_eq!(set.entry.tel.0, "+44561234567");
    let api = c.clone();
    let (code, message) = api_error(blocking(move || api.add_entry(Table::Routes, &entry("jp.example", "+81 50 1234 5678", None))).await);
    assert_eq!((code, message.as_str()), (400, "\"+81 50 1234 5678\" is not in country code +44"));
    let api = c.clone();
    let (code, message) = api_error(blocking(move || api.add_prefix("050", 14)).await);
    assert_eq!((code, message.as_str()), (400, "\"14\" is not a valid prefix length: 050 + 14 digits is not a possible E.164 number"));
    let api = c.clone();
    let removed = blocking(move || api.remove_prefix("056")).await.unwrap();
    assert_eq!((removed.prefix.length, removed.in_use), (7, 1));
    let api = c.clone();
    assert_eq!(api_error(blocking(move || api.remove_prefix("056")).await), (404, "no such prefix: 056".into()));
    s.stop().await;
}
