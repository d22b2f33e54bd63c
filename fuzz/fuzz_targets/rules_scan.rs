//! The routing rules' scanners (numbers, keywords, the message view) and `decide` on any
//! bytes: no panic, decisions deterministic and consistent with their evidence, local
//! recipients never routed elsewhere, the text bound kept.
//!
//! Input layout: byte 0 sets the scan bound (times 16, so 0..4080 bytes); the bytes up to the
//! first NUL are recipients, one per line; the rest is a raw message. The same bytes are also
//! scanned as a bare header value and text, so the scanners see input mail-parser would not
//! produce.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sipmta_rules::{E164, Entry, HeaderField, MessageView, Route, TableData, Tables, decide, domain_of, same_domain};

static TABLES: LazyLock<Tables> = LazyLock::new(|| {
    let row = |key: &str, tel: &str| (key.to_string(), Entry { tel: E164(tel.into()), name: Some("fuzz".into()) });
    Tables::build(TableData {
        addresses: vec![row("abc@efg.com", "+815011110001"), row("efg.com", "+815011110002"), row(".branch.example", "+815011110003")],
        keywords: vec![
            row("KYOTO", "+815022220001"),
            row("KYOTOBRANCHOFFICE", "+815022220002"),
            row("OSAKA-B", "+815022220003"),
            row("NY", "+815022220004"),
            row("京都支店", "+815022220005"),
            row("#42", "+815022220006"),
        ],
        learned: vec![row("taro@learn.example", "+815033330001")],
        ..TableData::default()
    })
    .expect("the fuzz tables build")
});

fn is_local(domain: &str) -> bool {
    same_domain(domain, "local.example")
}

fn check(rcpts: &[String], view: &MessageView) {
    let tables = &*TABLES;
    let decisions = decide(rcpts, &is_local, Some(view), tables);
    assert_eq!(decisions, decide(rcpts, &is_local, Some(view), tables), "not deterministic");
    assert_eq!(decisions.len(), rcpts.len());
    for (rcpt, d) in rcpts.iter().zip(&decisions) {
        assert_eq!(d.route == Route::Local, domain_of(rcpt).is_none_or(is_local), "{rcpt:?}: {d:?}");
        match &d.route {
            Route::Fast { tel } => assert_eq!(d.evidence.tel().map(|t| t.0.as_str()), Some(tel.as_str())),
            _ => assert!(d.evidence.tel().is_none(), "{d:?}"),
        }
        assert!(!d.evidence.to_string().is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&bound, rest)) = data.split_first() else { return };
    let limit = usize::from(bound) * 16;
    let (head, raw) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let rcpts: Vec<String> = String::from_utf8_lossy(head).lines().take(8).map(String::from).collect();

    let view = MessageView::parse(raw, limit);
    assert!(view.text().len() <= limit && view.headers().iter().all(|(_, v)| v.len() <= limit));
    check(&rcpts, &view);

    let text = String::from_utf8_lossy(raw);
    let bare = MessageView::new(vec![(HeaderField::Subject, text.to_string())], [text.as_ref()], limit);
    check(&rcpts, &bare);
    for found in TABLES.plan().find_iter(&text) {
        assert!(text.is_char_boundary(found.start) && text.is_char_boundary(found.end) && found.start < found.end);
        assert_eq!(TABLES.plan().normalise(&text[found.start..found.end]).as_ref(), Ok(&found.number));
    }
});
