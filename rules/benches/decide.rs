//! Routing decision cost at the scale: 100k address-table rows, 10k keywords, a
//! 64 KiB body. Target (issue 4): under 50 µs per message at the median.
//!
//! Benchmarks:
//! - `decide/address_table`: a recipient the address table decides; the body is never read.
//! - `decide/header_keyword`: undecided by the envelope, a keyword in Subject decides.
//! - `decide/worst_case_64k`: nothing matches anywhere, so the whole 64 KiB body is scanned
//!   for numbers and keywords.
//! - `decide/nothing_4k`: nothing matches, in a 4 KiB body (a common size for a text mail).
//! - `decide/worst_case_64k_no_keywords`: the same with an empty keyword table, to split the
//!   body scan into its number and keyword parts.
//! - `parse/64k_message`: `MessageView::parse` of the raw 64 KiB message (the daemon pays it
//!   only when `needs_message` says so).
//! - `build/tables`: `Tables::build` of all rows.
//!
//! Memory: a counting global allocator measures the bytes `Tables::build` leaves allocated
//! (the live heap of the built `Tables`, exactly, not an estimate), printed before the timings.
//! That needs `unsafe impl GlobalAlloc`, hence the lint exception for this file only.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{BatchSize, Criterion};
use sipmta_rules::{DEFAULT_SCAN_LIMIT, E164, Entry, Evidence, MessageView, Route, TableData, Tables, decide};

/// The system allocator, counting live bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`; only a counter is updated.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// xorshift64, so every run benchmarks the same tables and text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn word(&mut self, alphabet: &[u8], min: usize, max: usize) -> String {
        let len = min + (self.next() as usize) % (max - min + 1);
        (0..len).map(|_| char::from(alphabet[(self.next() as usize) % alphabet.len()])).collect()
    }
}

const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";

fn tel(i: usize) -> E164 {
    E164(format!("+8150{:08}", i))
}

/// 100k address rows (half full addresses, half domains) and 10k keywords (90% random
/// upper-case words of 6-16 letters, 10% Japanese office names).
fn table_data() -> TableData {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut addresses = Vec::with_capacity(100_000);
    for i in 0..50_000 {
        addresses.push((format!("user{i}@dom{}.example", i % 5_000), Entry { tel: tel(i), name: None }));
        addresses.push((format!("corp{i}.example"), Entry { tel: tel(50_000 + i), name: Some(format!("Corp {i}")) }));
    }
    let mut keywords = Vec::with_capacity(10_000);
    let mut seen = std::collections::HashSet::new();
    let kanji = ["京都", "大阪", "札幌", "福岡", "名古屋", "横浜", "神戸", "仙台"];
    while keywords.len() < 10_000 {
        let i = keywords.len();
        let keyword = if i % 10 == 0 { format!("{}第{}支店", kanji[i / 10 % kanji.len()], i / 10) } else { rng.word(UPPER, 6, 16) };
        if seen.insert(keyword.to_ascii_lowercase()) {
            keywords.push((keyword, Entry { tel: tel(200_000 + i), name: None }));
        }
    }
    TableData { addresses, keywords, ..TableData::default() }
}

/// About 64 KiB of prose-like text with dates, times and landline numbers but no IP phone
/// number and (checked below) no keyword.
fn body_64k() -> String {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut text = String::with_capacity(66_000);
    let mut n = 0u64;
    while text.len() < 64 * 1024 {
        n += 1;
        match n % 40 {
            0 => text.push_str("\r\n"),
            7 => text.push_str(" 2026-11-21 "),
            13 => text.push_str(" 03-1234-5678 "),
            19 => text.push_str(" 10:30 "),
            29 => text.push_str(" お世話になっております。"),
            _ => {
                text.push_str(&rng.word(LOWER, 2, 9));
                text.push(' ');
            }
        }
    }
    text
}

fn raw_message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: someone@sender.example\r\nTo: Nobody <nobody@nowhere.example>\r\nSubject: {subject}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    )
    .into_bytes()
}

fn is_local(domain: &str) -> bool {
    domain.eq_ignore_ascii_case("local.example")
}

fn report_memory(data: &TableData) {
    let before = LIVE.load(Ordering::Relaxed);
    let input = data.clone();
    let input_bytes = LIVE.load(Ordering::Relaxed) - before;
    let before = LIVE.load(Ordering::Relaxed);
    let tables = Tables::build(input).expect("tables build");
    let tables_bytes = LIVE.load(Ordering::Relaxed).saturating_sub(before - input_bytes);
    println!(
        "memory: TableData rows {:.1} MiB; built Tables live heap {:.1} MiB (of which keyword matcher: automata as reported by aho-corasick, plus prefix bitmap, {:.1} MiB)",
        input_bytes as f64 / 1048576.0,
        tables_bytes as f64 / 1048576.0,
        tables.keyword_matcher_memory() as f64 / 1048576.0,
    );
    drop(tables);
}

fn main() {
    let data = table_data();
    report_memory(&data);
    let tables = Tables::build(data.clone()).expect("tables build");
    let no_keywords = Tables::build(TableData { keywords: Vec::new(), ..data.clone() }).expect("tables build");
    let body = body_64k();
    let raw = raw_message("quarterly figures", &body);
    let view = MessageView::parse(&raw, DEFAULT_SCAN_LIMIT);
    assert!(view.text().len() >= 64 * 1024, "the body is {} bytes", view.text().len());
    let subject = format!("{} quarterly figures", data.keywords[1].0);
    let keyword_view = MessageView::parse(&raw_message(&subject, &body), DEFAULT_SCAN_LIMIT);

    let view_4k = MessageView::parse(&raw, 4 * 1024);
    let by_table = vec!["user4242@dom4242.example".to_string()];
    let nobody = vec!["nobody@nowhere.example".to_string()];
    // Check each case decides the way its name says, so the timings mean what they claim.
    let d = decide(&by_table, &is_local, Some(&view), &tables).remove(0);
    assert!(matches!(d.evidence, Evidence::AddressTable { .. }), "{}", d.evidence);
    let d = decide(&nobody, &is_local, Some(&keyword_view), &tables).remove(0);
    assert!(matches!(d.evidence, Evidence::KeywordInMessage { .. }), "{}", d.evidence);
    let d = decide(&nobody, &is_local, Some(&view), &tables).remove(0);
    assert_eq!(d.route, Route::Relay, "{}", d.evidence);
    println!("worst case: {}", d.evidence);

    let mut c = Criterion::default().measurement_time(Duration::from_secs(5)).configure_from_args();
    {
        let mut g = c.benchmark_group("decide");
        g.bench_function("address_table", |b| b.iter(|| decide(black_box(&by_table), &is_local, Some(&view), &tables)));
        g.bench_function("header_keyword", |b| b.iter(|| decide(black_box(&nobody), &is_local, Some(&keyword_view), &tables)));
        g.bench_function("worst_case_64k", |b| b.iter(|| decide(black_box(&nobody), &is_local, Some(&view), &tables)));
        g.bench_function("nothing_4k", |b| b.iter(|| decide(black_box(&nobody), &is_local, Some(&view_4k), &tables)));
        g.bench_function("worst_case_64k_no_keywords", |b| b.iter(|| decide(black_box(&nobody), &is_local, Some(&view), &no_keywords)));
        g.finish();
    }
    c.bench_function("parse/64k_message", |b| b.iter(|| MessageView::parse(black_box(&raw), DEFAULT_SCAN_LIMIT)));
    {
        let mut g = c.benchmark_group("build");
        g.sample_size(10).measurement_time(Duration::from_secs(20));
        g.bench_function("tables", |b| b.iter_batched(|| data.clone(), Tables::build, BatchSize::LargeInput));
        g.finish();
    }
    c.final_summary();
}
