//! Properties of `decide` over many generated inputs: it never panics, it is deterministic,
//! and its decisions respect the rules whatever the input. The generator is a fixed xorshift
//! sequence, so a failure names a case number that reproduces.

use sipmta_rules::{Decision, Entry, Evidence, HeaderField, MessageView, Route, TableData, Tables, decide, domain_of, needs_message};

use crate::support::*;

/// xorshift64: small, fast, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.below(list.len())]
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Fragments that exercise every rule, glued into addresses, headers and bodies.
const PIECES: &[&str] = &[
    "050-1234-5678",
    "０８０－１２３４－５６７８",
    "+81 50 1111 2222",
    "05000009999",
    "1",
    "0",
    "-",
    ".",
    " ",
    "KYOTO",
    "kyotobranchoffice",
    "京都支店",
    "TOKYOTOWER",
    "abc",
    "efg.com",
    "taro",
    "@",
    "local.example",
    "x.branch.example",
    "learn.example",
    "ｱ",
    "\u{0}",
    "\u{FEFF}",
    "\r\n",
    "=?UTF-8?B?5Lqs6YO95pSv5bqX?=",
    "<",
    ">",
    ",",
    ":",
];

fn text(rng: &mut Rng, max_pieces: usize) -> String {
    (0..rng.below(max_pieces + 1)).map(|_| rng.pick(PIECES)).collect()
}

fn rcpt(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => text(rng, 6),
        1 => format!("{}@{}", text(rng, 3), rng.pick(&["local.example", "LOCAL.example.", "efg.com", "x.example", "y.example"])),
        _ => format!("{}@{}", text(rng, 3), text(rng, 3)),
    }
}

fn raw_message(rng: &mut Rng) -> Vec<u8> {
    let mut raw = String::new();
    for _ in 0..rng.below(5) {
        let name = rng.pick(&["To", "Cc", "Subject", "X-Fastpath-Tel", "x-fastpath-tel", "From", "Received", "Content-Type"]);
        raw.push_str(&format!("{name}: {}\r\n", text(rng, 4)));
    }
    if rng.chance(3) {
        raw.push_str("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>");
        raw.push_str(&text(rng, 8));
        raw.push_str("</p>\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\nMDUwLTEyMzQtNTY3OA==\r\n--b--\r\n");
    } else {
        raw.push_str("\r\n");
        raw.push_str(&text(rng, 12));
    }
    let mut bytes = raw.into_bytes();
    // Now and then, damage it.
    for _ in 0..rng.below(3) {
        if !bytes.is_empty() {
            let i = rng.below(bytes.len());
            bytes[i] = rng.next() as u8;
        }
    }
    bytes
}

fn view(rng: &mut Rng) -> Option<MessageView> {
    let limit = rng.pick(&["0", "1", "7", "64", "262144"]).parse().unwrap_or(64);
    match rng.below(3) {
        0 => None,
        1 => Some(MessageView::parse(&raw_message(rng), limit)),
        _ => {
            let fields = [HeaderField::To, HeaderField::Cc, HeaderField::Subject, HeaderField::XFastpathTel];
            let headers = (0..rng.below(4)).map(|_| (fields[rng.below(4)], text(rng, 4))).collect();
            let parts: Vec<String> = (0..rng.below(3)).map(|_| text(rng, 10)).collect();
            Some(MessageView::new(headers, parts.iter().map(String::as_str), limit))
        }
    }
}

/// The fixture, sometimes with generated keywords and addresses added (which may make the
/// build fail: then the fixture alone is used, and failing must not have panicked).
fn table_data(rng: &mut Rng) -> TableData {
    let mut data = data();
    for _ in 0..rng.below(4) {
        let tel = format!("+8150{:08}", rng.below(100_000_000));
        let row = (text(rng, 2), Entry { tel: sipmta_rules::E164(tel), name: None });
        if rng.chance(2) { data.keywords.push(row) } else { data.addresses.push(row) }
    }
    data
}

fn check(case: usize, rcpts: &[String], view: Option<&MessageView>, tables: &Tables, again: &Tables) {
    let ds = decide(rcpts, &is_local, view, tables);
    assert_eq!(ds.len(), rcpts.len(), "case {case}");
    assert_eq!(ds, decide(rcpts, &is_local, view, tables), "case {case}: same call, other result");
    assert_eq!(ds, decide(rcpts, &is_local, view, again), "case {case}: same tables rebuilt, other result");
    let envelope_only = decide(rcpts, &is_local, None, tables);
    let domains: std::collections::BTreeSet<String> =
        rcpts.iter().filter_map(|r| domain_of(r)).filter(|d| !is_local(d)).map(|d| d.trim_end_matches('.').to_lowercase()).collect();
    for ((rcpt, d), bare) in rcpts.iter().zip(&ds).zip(&envelope_only) {
        let local = domain_of(rcpt).is_none_or(is_local);
        assert_eq!(d.route == Route::Local, local, "case {case}: {rcpt:?} -> {d:?}");
        match (&d.route, d.evidence.tel()) {
            (Route::Fast { tel }, Some(t)) => assert_eq!(tel, &t.0, "case {case}"),
            (Route::Fast { .. }, None) => panic!("case {case}: fast without a number: {d:?}"),
            (_, Some(_)) => panic!("case {case}: a number that was not used: {d:?}"),
            _ => {}
        }
        if matches!(d.evidence, Evidence::NumberInMessage { .. } | Evidence::KeywordInMessage { .. }) {
            assert_eq!(domains.len(), 1, "case {case}: message evidence with recipients in {domains:?}");
        }
        // Envelope evidence does not depend on the message.
        if !matches!(bare.evidence, Evidence::NoEvidence { .. }) {
            assert_eq!(d, bare, "case {case}: {rcpt:?}");
        }
        assert!(!d.evidence.to_string().is_empty());
        let json = serde_json::to_string(d).unwrap_or_default();
        assert_eq!(serde_json::from_str::<Decision>(&json).ok().as_ref(), Some(d), "case {case}: {json}");
    }
    if !needs_message(rcpts, &is_local, tables) {
        assert_eq!(ds, envelope_only, "case {case}: needs_message said the message did not matter");
    }
}

#[test]
fn decide_never_panics_and_is_deterministic() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let fixture = tables();
    let mut fast = 0;
    let mut from_message = 0;
    for case in 0..4_000 {
        let data = table_data(&mut rng);
        let (tables, again) = match (Tables::build(data.clone()), Tables::build(data)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(a), Err(b)) => {
                assert_eq!(a, b, "case {case}: the same rows fail the same way");
                (tables(), tables())
            }
            (a, b) => panic!("case {case}: building twice gave {a:?} and {b:?}"),
        };
        let rcpts: Vec<String> = (0..rng.below(5)).map(|_| rcpt(&mut rng)).collect();
        let view = view(&mut rng);
        if let Some(v) = &view {
            assert!(v.headers().iter().all(|(_, value)| value.len() <= 262_144));
        }
        check(case, &rcpts, view.as_ref(), &tables, &again);
        let ds = decide(&rcpts, &is_local, view.as_ref(), &fixture);
        fast += ds.iter().filter(|d| matches!(d.route, Route::Fast { .. })).count();
        from_message +=
            ds.iter().filter(|d| matches!(d.evidence, Evidence::NumberInMessage { .. } | Evidence::KeywordInMessage { .. })).count();
    }
    // The generator must reach the interesting paths, or the property proves little.
    assert!(fast > 500 && from_message > 50, "fast {fast}, from the message {from_message}");
}

#[test]
fn message_views_respect_the_bound() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for case in 0..3_000 {
        let raw = raw_message(&mut rng);
        let limit = rng.below(80);
        let v = MessageView::parse(&raw, limit);
        assert!(v.text().len() <= limit, "case {case}");
        assert!(v.headers().iter().all(|(_, value)| value.len() <= limit), "case {case}");
        assert_eq!(v, MessageView::parse(&raw, limit), "case {case}");
    }
}
