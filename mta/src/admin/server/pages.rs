//! `GET /metrics` (Prometheus text format) and `GET /status` (a small HTML page) on the admin
//! listener (issue 9 items 2 and 7).
//!
//! Both show counts, queue states, recent deliveries and registrations, never message content
//! or passwords, and the listener is loopback-only; so with `admin.open_pages` (the default)
//! they answer without the token, like Postfix's `mailq` answers any local user. Prometheus
//! and a browser then need no secret; an operator who wants one turns the option off.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use sipmta_store::{LocationEntry, RcptState, Store, StoreError, now};

use super::{Reply, blocking};
use crate::admin::http::Request;
use crate::metrics::{METRICS, header, label_text};
use crate::smtp::Ctx;

/// Every recipient state, in the order the page lists them.
const STATES: [RcptState; 7] = [
    RcptState::Queued,
    RcptState::Deferred,
    RcptState::Held,
    RcptState::Delivered,
    RcptState::Relayed,
    RcptState::Failed,
    RcptState::Expired,
];

/// Whether `request` is for one of the pages.
pub fn is_page(request: &Request) -> bool {
    matches!(request.path.as_str(), "/metrics" | "/status")
}

/// Answer a page request (the token, if required, was checked by the caller).
pub async fn handle(request: &Request, ctx: &Arc<Ctx>) -> Reply {
    if request.method != "GET" {
        return Reply::error(405, "use GET").with("Allow", "GET");
    }
    let state = match read_state(ctx).await {
        Ok(state) => state,
        Err(reply) => return reply,
    };
    if request.path == "/metrics" {
        Reply {
            status: 200,
            headers: vec![("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
            body: metrics(&state).into_bytes(),
        }
    } else {
        Reply { status: 200, headers: vec![("Content-Type", "text/html; charset=utf-8")], body: status_page(ctx, &state).into_bytes() }
    }
}

/// What is read from the store and the SIP agent at each request.
struct State {
    messages: usize,
    /// Recipients of queued messages by state.
    recipients: BTreeMap<RcptState, usize>,
    /// Our numbers and the registration time they have left (`None`: not registered).
    own_numbers: Vec<(String, Option<Duration>)>,
    /// The built-in registrar's live bindings, when it runs.
    bindings: Option<Vec<(String, LocationEntry)>>,
}

async fn read_state(ctx: &Arc<Ctx>) -> Result<State, Reply> {
    let store: Store = ctx.store.clone();
    let registrar = ctx.config.registrar.enabled;
    let (messages, recipients, bindings) = blocking(move || {
        let mut messages = 0;
        let mut recipients: BTreeMap<RcptState, usize> = STATES.iter().map(|s| (*s, 0)).collect();
        for env in store.queue() {
            let env = env?;
            messages += 1;
            for r in &env.recipients {
                *recipients.entry(r.state).or_default() += 1;
            }
        }
        let bindings = if registrar {
            let now = now();
            Some(store.locations()?.into_iter().filter(|(_, b)| b.expires_at > now).collect())
        } else {
            None
        };
        Ok::<_, StoreError>((messages, recipients, bindings))
    })
    .await?;
    let own_numbers = ctx.relay.as_ref().and_then(|r| r.fast.as_ref()).map(|f| f.agent.registrations()).unwrap_or_default();
    Ok(State { messages, recipients, own_numbers, bindings })
}

fn metrics(state: &State) -> String {
    let mut out = String::new();
    METRICS.render(&mut out);
    header(&mut out, "sipmta_queue_messages", "Messages in the queue (received, not yet finished for every recipient).", "gauge");
    let _ = writeln!(out, "sipmta_queue_messages {}", state.messages);
    header(&mut out, "sipmta_queue_recipients", "Recipients of queued messages, by state.", "gauge");
    for (s, n) in &state.recipients {
        let _ = writeln!(out, "sipmta_queue_recipients{} {n}", label_text(&[("state", s.to_string())], None));
    }
    header(&mut out, "sipmta_sip_registered", "Whether each of our fast-path numbers is registered (1) or not (0).", "gauge");
    for (number, left) in &state.own_numbers {
        let _ = writeln!(out, "sipmta_sip_registered{} {}", label_text(&[("number", number.clone())], None), u8::from(left.is_some()));
    }
    if let Some(bindings) = &state.bindings {
        header(&mut out, "sipmta_registrar_bindings", "Live contacts registered with the built-in registrar.", "gauge");
        let _ = writeln!(out, "sipmta_registrar_bindings {}", bindings.len());
    }
    out
}

fn status_page(ctx: &Ctx, state: &State) -> String {
    let host = html(&ctx.config.hostname);
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"10\">\
         <title>sipmta on {host}</title><style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse;margin-bottom:1.5em}}\
         td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:left}}th{{background:#eee}}</style></head><body>\n\
         <h1>sipmta on {host}</h1>\n<p>Refreshes every 10 s. Counters since the start: <a href=\"/metrics\">/metrics</a>.</p>\n"
    );
    page.push_str("<h2>Queue</h2>\n<table><tr><th>messages</th>");
    for s in STATES {
        let _ = write!(page, "<th>{s}</th>");
    }
    let _ = write!(page, "</tr>\n<tr><td id=\"queue-messages\">{}</td>", state.messages);
    for s in STATES {
        let _ = write!(page, "<td id=\"queue-{s}\">{}</td>", state.recipients.get(&s).copied().unwrap_or(0));
    }
    page.push_str("</tr></table>\n<h2>Recent deliveries</h2>\n");
    let recent = METRICS.recent(ctx.store.instance());
    if recent.is_empty() {
        page.push_str("<p>None since the start.</p>\n");
    } else {
        page.push_str(
            "<table><tr><th>seconds ago</th><th>queue id</th><th>recipient</th><th>route</th><th>result</th><th>detail</th></tr>\n",
        );
        let now = now();
        for r in recent {
            let _ = writeln!(
                page,
                "<tr class=\"delivery\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                now.saturating_sub(r.at),
                r.id,
                html(&r.rcpt),
                r.route,
                html(&r.result),
                html(&r.detail)
            );
        }
        page.push_str("</table>\n");
    }
    page.push_str("<h2>SIP registrations</h2>\n");
    if state.own_numbers.is_empty() {
        page.push_str("<p>The fast path is off or has no numbers of its own.</p>\n");
    } else {
        page.push_str("<table><tr><th>our number</th><th>registered</th></tr>\n");
        for (number, left) in &state.own_numbers {
            let status = left.map_or_else(|| "no".to_owned(), |d| format!("yes, {} s left", d.as_secs()));
            let _ = writeln!(page, "<tr class=\"own-number\"><td>{}</td><td>{status}</td></tr>", html(number));
        }
        page.push_str("</table>\n");
    }
    if let Some(bindings) = &state.bindings {
        let _ = writeln!(page, "<p>Built-in registrar: {} live contact(s).</p>", bindings.len());
        if !bindings.is_empty() {
            page.push_str("<table><tr><th>number</th><th>contact</th><th>from</th><th>expires in (s)</th></tr>\n");
            let now = now();
            for (aor, b) in bindings {
                let _ = writeln!(
                    page,
                    "<tr class=\"binding\"><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td></tr>",
                    html(aor),
                    html(&b.contact),
                    html(&b.transport),
                    html(&b.source),
                    b.expires_at.saturating_sub(now)
                );
            }
            page.push_str("</table>\n");
        }
    }
    page.push_str("</body></html>\n");
    page
}

/// Text for HTML: addresses and replies come from outside.
fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
