//! A fixed set of tables and helpers shared by the decide tests.

use sipmta_rules::{Decision, E164, Entry, MessageView, NumberPlan, TableData, Tables, decide, same_domain};

/// The site's own domain in every test.
pub const LOCAL: &str = "local.example";

pub fn entry(tel: &str, name: Option<&str>) -> Entry {
    Entry { tel: E164(tel.into()), name: name.map(Into::into) }
}

/// The fixture. Numbers are chosen so a test can tell every row apart:
/// 1111xxxx address table, 2222xxxx keywords, 3333xxxx learned.
pub fn data() -> TableData {
    let row = |k: &str, tel: &str, name: Option<&str>| (k.to_string(), entry(tel, name));
    TableData {
        plan: NumberPlan::default(),
        addresses: vec![
            row("abc@efg.com", "+815011110001", Some("Abc")),
            row("efg.com", "+815011110002", Some("Kyoto office")),
            row(".branch.example", "+815011110003", None),
            row("osaka.example", "+815011110004", Some("Osaka office")),
            row(LOCAL, "+815011119999", None),
        ],
        keywords: vec![
            row("KYOTO", "+815022220001", Some("Kyoto branch")),
            row("KYOTOBRANCHOFFICE", "+815022220002", None),
            row("京都支店", "+815022220003", None),
        ],
        learned: vec![
            row("taro@learn.example", "+815033330001", None),
            row("abc@efg.com", "+815033330002", None),
            row("kyoto@learn.example", "+815033330003", None),
            row("050-4444-5555@learn.example", "+815033330004", None),
        ],
    }
}

pub fn tables() -> Tables {
    Tables::build(data()).expect("fixture builds")
}

pub fn is_local(domain: &str) -> bool {
    same_domain(domain, LOCAL)
}

pub fn rcpts(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Decide several recipients against the fixture.
pub fn decide_all(list: &[&str], view: Option<&MessageView>) -> Vec<Decision> {
    decide(&rcpts(list), &is_local, view, &tables())
}

/// Decide one recipient against the fixture.
pub fn decide_one(rcpt: &str, view: Option<&MessageView>) -> Decision {
    decide_all(&[rcpt], view).remove(0)
}

/// A message from raw text (LF line ends are fine for mail-parser).
pub fn message(raw: &str) -> MessageView {
    MessageView::parse(raw.as_bytes(), sipmta_rules::DEFAULT_SCAN_LIMIT)
}

/// `Fast` to this number, or a panic that shows the decision.
#[track_caller]
pub fn assert_fast(d: &Decision, tel: &str) {
    assert_eq!(d.route, sipmta_rules::Route::Fast { tel: tel.into() }, "{}", d.evidence);
    assert_eq!(d.evidence.tel().map(|t| t.0.as_str()), Some(tel));
}
