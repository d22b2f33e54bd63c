//! `/metrics` and `/status`: scraped and fetched while the daemon delivers one message locally
//! and defers one (relay to 127.0.0.1:9, where nothing listens).

use std::time::Duration;

use super::queue::send;
use super::{raw, start, status};
use crate::config::Span;
use crate::testutil::eventually;

/// The body of a GET, and its status and Content-Type.
async fn get(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> (String, String, String) {
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let answer = raw(addr, format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n").as_bytes()).await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let content_type =
        head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type: ").map(str::to_owned)).unwrap_or_default();
    (status(&answer).to_owned(), content_type, body.to_owned())
}

/// The value of the series `name` (with its labels, exactly as written) in a scrape.
fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' '))).map(|v| v.parse().unwrap())
}

#[tokio::test]
async fn metrics_and_status_show_receptions_deliveries_and_the_queue() {
    let s = start(|c| {
        c.trusted_networks = vec!["127.0.0.0/8".parse().unwrap()];
        c.relay.transport.insert("remote.example".into(), "[127.0.0.1]:9".into());
        c.relay.retry = vec![Span(Duration::from_secs(3600))];
    })
    .await;
    let local = send(s.smtp, "postmaster@localhost").await;
    let remote = send(s.smtp, "bob@remote.example").await;
    let store = s.store.clone();
    eventually("the local delivery and the deferral", || {
        store.queue_len() == 1
            && store.envelope(remote).unwrap().is_some_and(|e| e.recipients[0].state == sipmta_store::RcptState::Deferred)
    })
    .await;

    let (code, content_type, scrape) = get(s.admin, "/metrics", None).await;
    assert_eq!(code, "200", "{scrape}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    // The counters are the process's, shared with the other tests running alongside: at least
    // what this test caused. The queue gauges are this daemon's own.
    assert!(value(&scrape, "sipmta_messages_received_total{listener=\"smtp\"}").unwrap() >= 2.0, "{scrape}");
    assert!(value(&scrape, "sipmta_deliveries_total{route=\"local\",result=\"delivered\"}").unwrap() >= 1.0, "{scrape}");
    assert!(value(&scrape, "sipmta_deferrals_total{route=\"relay\",reason=\"network\"}").unwrap() >= 1.0, "{scrape}");
    assert!(value(&scrape, "sipmta_delivery_seconds_count{route=\"local\"}").unwrap() >= 1.0, "{scrape}");
    assert_eq!(value(&scrape, "sipmta_queue_messages"), Some(1.0), "{scrape}");
    assert_eq!(value(&scrape, "sipmta_queue_recipients{state=\"deferred\"}"), Some(1.0), "{scrape}");
    assert_eq!(value(&scrape, "sipmta_queue_recipients{state=\"queued\"}"), Some(0.0), "{scrape}");
    assert!(scrape.contains("# TYPE sipmta_delivery_seconds histogram\n"), "{scrape}");
    // Every sample line is `name{labels} value`, and every family has its TYPE.
    for line in scrape.lines().filter(|l| !l.starts_with('#')) {
        let (series, v) = line.rsplit_once(' ').unwrap();
        assert!(v.parse::<f64>().is_ok() || v == "+Inf", "{line}");
        let family = series.split('{').next().unwrap();
        let base = family.trim_end_matches("_bucket").trim_end_matches("_sum").trim_end_matches("_count");
        assert!(scrape.contains(&format!("# TYPE {family} ")) || scrape.contains(&format!("# TYPE {base} histogram")), "{line}");
    }

    let (code, content_type, page) = get(s.admin, "/status", None).await;
    assert_eq!((code.as_str(), content_type.as_str()), ("200", "text/html; charset=utf-8"), "{page}");
    assert!(page.contains("<td id=\"queue-messages\">1</td>"), "{page}");
    assert!(page.contains("<td id=\"queue-deferred\">1</td>"), "{page}");
    let row = |id, rcpt: &str, route: &str, result: &str| {
        page.lines().any(|l| {
            l.starts_with("<tr class=\"delivery\">")
                && l.contains(&format!("<td>{id}</td><td>{rcpt}</td><td>{route}</td><td>{result}</td>"))
        })
    };
    assert!(row(local, "postmaster@localhost", "local", "delivered"), "{page}");
    assert!(row(remote, "bob@remote.example", "relay", "deferred"), "{page}");
    assert!(page.contains("The fast path is off"), "{page}");
    s.stop().await;
}

#[tokio::test]
async fn closed_pages_need_the_token() {
    let s = start(|c| c.admin.open_pages = false).await;
    for path in ["/metrics", "/status"] {
        assert_eq!(get(s.admin, path, None).await.0, "401", "{path}");
    }
    let token = std::fs::read_to_string(s.dir.path().join("admin.token")).unwrap();
    let (code, _, scrape) = get(s.admin, "/metrics", Some(token.trim())).await;
    assert_eq!(code, "200");
    assert!(scrape.contains("sipmta_queue_messages 0\n"), "{scrape}");
    // A POST is not a page request: 405 with the methods allowed.
    let answer =
        raw(s.admin, format!("POST /status HTTP/1.1\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\n\r\n", token.trim()).as_bytes())
            .await;
    assert_eq!(status(&answer), "405", "{answer}");
    s.stop().await;
}
