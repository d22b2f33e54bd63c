//! Counters and histograms for `/metrics` on the admin listener (issue 9 item 2), written in
//! Prometheus' text exposition format 0.0.4.
//!
//! Events are counted where they are logged (a reception, a delivery attempt's result, a DSN
//! queued, a fast-path setup), into one process-wide [`METRICS`]: like the tracing subscriber,
//! it belongs to the process, not to a session, and threading a handle through every context
//! would only move the global. What is a state rather than an event (the queue by state, SIP
//! registrations) is read when scraped, by the admin server.
//!
//! Label values come from small fixed sets (listener names, routes, results, RFC 3463 subject
//! classes), never from addresses, so the number of series stays bounded.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// Buckets of the end-to-end delivery time (seconds). Envelopes keep their arrival to the
/// second, so the first bucket is one second.
const DELIVERY_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14_400.0, 86_400.0];
/// Buckets of the fast-path setup time (seconds): INVITE to the SMTP greeting on the stream.
const SETUP_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Delivery attempts kept for the status page.
const RECENT: usize = 100;
/// Attempts kept across all stores of the process, so that each still has its last [`RECENT`]
/// when several run side by side (tests).
const RING: usize = 10 * RECENT;

/// Labels of one series, in a fixed order.
type Labels = Vec<(&'static str, String)>;

/// A counter family: one `u64` per label set.
#[derive(Debug, Default)]
struct Counter {
    series: Mutex<BTreeMap<Labels, u64>>,
}

impl Counter {
    fn add(&self, labels: Labels) {
        *self.series.lock().unwrap_or_else(PoisonError::into_inner).entry(labels).or_default() += 1;
    }

    fn get(&self, labels: &[(&'static str, &str)]) -> u64 {
        let key: Labels = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        self.series.lock().unwrap_or_else(PoisonError::into_inner).get(&key).copied().unwrap_or(0)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, help, "counter");
        for (labels, value) in self.series.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            let _ = writeln!(out, "{name}{} {value}", label_text(labels, None));
        }
    }
}

/// A histogram family with fixed buckets, one per label set.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    series: Mutex<BTreeMap<Labels, Buckets>>,
}

#[derive(Debug, Clone, Default)]
struct Buckets {
    /// Observations at or below each bound (not cumulative; summed when rendered).
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram { bounds, series: Mutex::default() }
    }

    fn observe(&self, labels: Labels, value: f64) {
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let b = series.entry(labels).or_insert_with(|| Buckets { counts: vec![0; self.bounds.len()], ..Buckets::default() });
        if let Some(i) = self.bounds.iter().position(|bound| value <= *bound) {
            b.counts[i] += 1;
        }
        b.sum += value;
        b.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, help, "histogram");
        for (labels, b) in self.series.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            let mut cumulative = 0;
            for (bound, n) in self.bounds.iter().zip(&b.counts) {
                cumulative += n;
                let _ = writeln!(out, "{name}_bucket{} {cumulative}", label_text(labels, Some(&bound.to_string())));
            }
            let _ = writeln!(out, "{name}_bucket{} {}", label_text(labels, Some("+Inf")), b.count);
            let _ = writeln!(out, "{name}_sum{} {}", label_text(labels, None), b.sum);
            let _ = writeln!(out, "{name}_count{} {}", label_text(labels, None), b.count);
        }
    }
}

/// Everything counted as it happens.
#[derive(Debug)]
pub struct Metrics {
    received: Counter,
    resends: Counter,
    deliveries: Counter,
    deferrals: Counter,
    dsns: Counter,
    delivery_time: Histogram,
    setup_time: Histogram,
    started: AtomicU64,
    recent: Mutex<VecDeque<Recent>>,
}

/// One recipient's delivery attempt, as the places that log a `delivery` line know it.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The store the message is in ([`sipmta_store::Store::instance`]).
    pub site: usize,
    /// The message.
    pub id: sipmta_store::QueueId,
    /// The recipient.
    pub rcpt: &'a str,
    /// `local`, `fast` or `relay`.
    pub route: &'static str,
    /// `delivered`, `relayed`, `deferred`, `failed`, `expired` or `fallback` (fast path
    /// failed, relaying instead).
    pub result: &'a str,
    /// The RFC 3463 status, when there is one (it classifies deferrals).
    pub status: Option<&'a str>,
    /// The remote reply or what happened, for the status page.
    pub detail: &'a str,
    /// The message's arrival (Unix seconds), for the end-to-end time of a success.
    pub received: u64,
}

/// A delivery attempt on the status page.
#[derive(Debug, Clone)]
pub struct Recent {
    /// The store, as in [`Attempt`].
    pub site: usize,
    /// When (Unix seconds).
    pub at: u64,
    /// The message.
    pub id: sipmta_store::QueueId,
    /// The recipient.
    pub rcpt: String,
    /// Route, as in [`Attempt`].
    pub route: &'static str,
    /// Result, as in [`Attempt`].
    pub result: String,
    /// The reply or what happened.
    pub detail: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            received: Counter::default(),
            resends: Counter::default(),
            deliveries: Counter::default(),
            deferrals: Counter::default(),
            dsns: Counter::default(),
            delivery_time: Histogram::new(DELIVERY_BUCKETS),
            setup_time: Histogram::new(SETUP_BUCKETS),
            started: AtomicU64::new(sipmta_store::now()),
            recent: Mutex::default(),
        }
    }
}

impl Metrics {
    /// A message was accepted (its `250` sent) on `listener` (`smtp`, `submission`,
    /// `submissions`, `fastpath`).
    pub fn received(&self, listener: &str) {
        self.received.add(vec![("listener", listener.to_owned())]);
    }

    /// A message sent again was recognised on `listener` (see `spool.resend_window`).
    pub fn resend(&self, listener: &str) {
        self.resends.add(vec![("listener", listener.to_owned())]);
    }

    /// A delivery attempt for one recipient ended.
    pub fn delivery(&self, a: Attempt<'_>) {
        let (route, result) = (a.route, a.result);
        self.deliveries.add(vec![("route", route.to_owned()), ("result", result.to_owned())]);
        if result == "deferred" {
            self.deferrals.add(vec![("route", route.to_owned()), ("reason", reason(a.status.unwrap_or("")).to_owned())]);
        }
        if matches!(result, "delivered" | "relayed") {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
            #[allow(clippy::cast_precision_loss)] // Unix seconds fit an f64's 53 bits
            let elapsed = (now - a.received as f64).max(0.0);
            self.delivery_time.observe(vec![("route", route.to_owned())], elapsed);
        }
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if recent.len() == RING {
            recent.pop_front();
        }
        recent.push_back(Recent {
            site: a.site,
            at: sipmta_store::now(),
            id: a.id,
            rcpt: a.rcpt.to_owned(),
            route,
            result: result.to_owned(),
            detail: a.detail.to_owned(),
        });
    }

    /// The last delivery attempts of messages in the store `site`, newest first.
    pub fn recent(&self, site: usize) -> Vec<Recent> {
        let ring = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        ring.iter().rev().filter(|r| r.site == site).take(RECENT).cloned().collect()
    }

    /// A report was queued: `kind` is `failed`, `delayed`, `delivered`, `relayed` (DSNs,
    /// RFC 3464) or `mdn`.
    pub fn dsn(&self, kind: &str) {
        self.dsns.add(vec![("kind", kind.to_owned())]);
    }

    /// A new fast-path session was set up in `took` (INVITE to the SMTP greeting).
    pub fn fastpath_setup(&self, took: Duration) {
        self.setup_time.observe(Vec::new(), took.as_secs_f64());
    }

    /// The deliveries counted so far with `route` and `result` (for tests).
    pub fn deliveries(&self, route: &str, result: &str) -> u64 {
        self.deliveries.get(&[("route", route), ("result", result)])
    }

    /// The event metrics in the text format; the admin server appends the state it reads.
    pub fn render(&self, out: &mut String) {
        self.received.render(out, "sipmta_messages_received_total", "Messages accepted (250 after DATA), by listener.");
        self.resends.render(
            out,
            "sipmta_resends_recognised_total",
            "Messages sent again after a broken connection, answered with the first copy's id and not accepted twice, by listener.",
        );
        self.deliveries.render(
            out,
            "sipmta_deliveries_total",
            "Delivery attempt results per recipient, by route (local, fast, relay) and result.",
        );
        self.deferrals.render(out, "sipmta_deferrals_total", "Deferred delivery attempts, by route and RFC 3463 status class.");
        self.dsns.render(out, "sipmta_reports_sent_total", "DSNs and MDNs queued, by kind.");
        self.delivery_time.render(
            out,
            "sipmta_delivery_seconds",
            "Arrival to successful delivery or hand-over, per recipient, by route (arrival kept to the second).",
        );
        self.setup_time.render(out, "sipmta_fastpath_setup_seconds", "New fast-path sessions: INVITE to the SMTP greeting on the stream.");
        header(out, "sipmta_start_time_seconds", "When the daemon started (Unix seconds).", "gauge");
        let _ = writeln!(out, "sipmta_start_time_seconds {}", self.started.load(Ordering::Relaxed));
    }
}

/// Write a family's `# HELP` and `# TYPE` lines.
pub fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// `{a="x",b="y"}` with values escaped as the format asks (backslash, quote, newline), or
/// nothing without labels; `le` is a histogram bucket's bound.
pub fn label_text(labels: &[(&'static str, String)], le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() { String::new() } else { format!("{{{}}}", parts.join(",")) }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The deferral reason: the subject of an RFC 3463 status (`4.4.1` is `network`), which is
/// what an operator acts on (a remote mailbox, our routing, their policy).
fn reason(status: &str) -> &'static str {
    match status.split('.').nth(1) {
        Some("1") => "address",
        Some("2") => "mailbox",
        Some("3") => "system",
        Some("4") => "network",
        Some("5") => "protocol",
        Some("6") => "content",
        Some("7") => "policy",
        _ => "other",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_in_the_text_format() {
        let m = Metrics::default();
        m.received("smtp");
        m.received("smtp");
        let a = Attempt {
            site: 1,
            id: sipmta_store::QueueId(1),
            rcpt: "b@example.net",
            route: "relay",
            result: "deferred",
            status: Some("4.4.1"),
            detail: "no connection",
            received: 0,
        };
        m.delivery(a);
        m.delivery(Attempt { status: Some("4.7.0"), ..a });
        m.delivery(Attempt { route: "local", result: "delivered", status: None, received: sipmta_store::now(), ..a });
        m.fastpath_setup(Duration::from_millis(30));
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("# TYPE sipmta_messages_received_total counter\n"), "{out}");
        assert!(out.contains("sipmta_messages_received_total{listener=\"smtp\"} 2\n"), "{out}");
        assert!(out.contains("sipmta_deliveries_total{route=\"relay\",result=\"deferred\"} 2\n"), "{out}");
        assert!(out.contains("sipmta_deferrals_total{route=\"relay\",reason=\"network\"} 1\n"), "{out}");
        assert!(out.contains("sipmta_deferrals_total{route=\"relay\",reason=\"policy\"} 1\n"), "{out}");
        assert!(out.contains("sipmta_delivery_seconds_bucket{route=\"local\",le=\"1\"} 1\n"), "{out}");
        assert!(out.contains("sipmta_delivery_seconds_bucket{route=\"local\",le=\"+Inf\"} 1\n"), "{out}");
        assert!(out.contains("sipmta_delivery_seconds_count{route=\"local\"} 1\n"), "{out}");
        // 30 ms: not in the 25 ms bucket, in the 50 ms one and every one after.
        assert!(out.contains("sipmta_fastpath_setup_seconds_bucket{le=\"0.025\"} 0\n"), "{out}");
        assert!(out.contains("sipmta_fastpath_setup_seconds_bucket{le=\"0.05\"} 1\n"), "{out}");
        assert!(out.contains("sipmta_fastpath_setup_seconds_bucket{le=\"5\"} 1\n"), "{out}");
        assert_eq!(m.deliveries("relay", "deferred"), 2);
        let recent = m.recent(1);
        assert_eq!(recent.len(), 3);
        assert_eq!((recent[0].route, recent[0].result.as_str()), ("local", "delivered"), "newest first");
        // Another store's attempts are its own; each store sees its last RECENT.
        for _ in 0..RING {
            m.delivery(Attempt { site: 2, ..a });
        }
        assert_eq!(m.recent(2).len(), RECENT);
        assert!(m.recent(1).is_empty(), "pushed out of the ring by RING newer attempts");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_text(&[("n", "a\"b\\c\nd".into())], None), "{n=\"a\\\"b\\\\c\\nd\"}");
        assert_eq!(label_text(&[], None), "");
    }
}
