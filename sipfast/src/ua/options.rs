//! OPTIONS (RFC 3261 §11): the capability answer for our numbers, and the probe of another
//! number's capabilities before the first INVITE to it (issue 7 item 4, "Capability answer").
//!
//! **Answer (UAS).** An OPTIONS outside a dialog is answered with the status an INVITE would
//! get (§11.2):
//! - a Request-URI user that is not one of our numbers: `404`, as in `incoming::new_invite`;
//! - one of our numbers, or no user at all (a query of the agent itself, such as a proxy's
//!   keep-alive ping): `200` with `Allow` and `Accept: application/sdp` (§11.2), and, when
//!   [`super::SipConfig::protocols`] names any and the request accepts SDP, the capability
//!   description `m=application 0 TCP smtp http` ([`crate::sdp::capability`]).
//!
//! **Probe (UAC).** [`probe`] sends OPTIONS where an INVITE for the number would go (the
//! outbound proxy, or the address a locator found), from our first number with
//! `Accept: application/sdp` (§11.1), answers one 401/407 digest challenge with that number's
//! credential as an INVITE would (§22.2, §22.3), and reads the protocols from the `2xx`'s SDP.
//! A non-INVITE request is never cancelled (§9.1): past the budget the transaction is dropped
//! and the probe is a [`ProbeError::Timeout`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use rsipstack::dialog::authenticate::handle_client_authenticate;
use rsipstack::sip::{self as rsip, Header, Method, SipMessage, StatusCode, StatusCodeKind};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::make_tag;
use rsipstack::transaction::transaction::Transaction;
use tracing::{debug, info};

use super::ProbeError;
use super::incoming::ALLOW;
use super::invite::Target;
use super::stack::Shared;
use crate::sdp::{SessionDescription, capabilities, read_capabilities};

/// Answers an out-of-dialog OPTIONS: see the module docs.
pub(super) async fn answer(shared: &Shared, mut tx: Transaction) -> rsipstack::Result<()> {
    if let Some(user) = tx.original.uri.auth.as_ref().map(|auth| auth.user.as_str())
        && !shared.is_ours(user)
    {
        debug!(number = %user, code = 404, "OPTIONS for a number not ours");
        return tx.reply(StatusCode::NotFound).await;
    }
    let mut headers = vec![Header::Allow(ALLOW.into()), Header::Accept("application/sdp".into())];
    let accept: Vec<String> = tx
        .original
        .headers
        .iter()
        .filter_map(|h| match h {
            Header::Accept(a) => Some(a.value().to_string()),
            _ => None,
        })
        .collect();
    let protocols: Vec<&str> = shared.config.protocols.iter().map(String::as_str).collect();
    let body = match capabilities(&protocols, shared.local.ip()) {
        Some(sdp) if accepts_sdp(&accept) => {
            headers.push(Header::ContentType("application/sdp".into()));
            Some(sdp.encode().into_bytes())
        }
        _ => None,
    };
    debug!(uri = %tx.original.uri, described = body.is_some(), "OPTIONS answered 200");
    tx.reply_with(StatusCode::OK, headers, body).await
}

/// Whether an answer may carry SDP, given the request's `Accept` values: with no `Accept` the
/// server assumes `application/sdp`, an empty one accepts nothing (RFC 3261 §20.1); otherwise
/// one of its media ranges must cover `application/sdp` (RFC 2616 §14.1, parameters ignored).
fn accepts_sdp(accept: &[String]) -> bool {
    if accept.is_empty() {
        return true;
    }
    accept
        .iter()
        .flat_map(|value| value.split(','))
        .map(|range| range.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .any(|range| matches!(range.as_str(), "application/sdp" | "application/*" | "*/*"))
}

/// [`super::SipAgent::probe`]: one `info` line per probe with the outcome and timing.
pub(super) async fn probe(shared: &Arc<Shared>, number: &str, target: Target, budget: Duration) -> Result<Vec<String>, ProbeError> {
    let started = Instant::now();
    let result = tokio::time::timeout(budget, ask(shared, &target)).await.unwrap_or(Err(ProbeError::Timeout));
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match &result {
        Ok(protocols) => info!(%number, outcome = "answered", ?protocols, elapsed_ms, "sip options"),
        Err(ProbeError::Rejected { code, reason }) => info!(%number, outcome = "rejected", code, %reason, elapsed_ms, "sip options"),
        Err(e) => info!(%number, outcome = "failed", error = %e, elapsed_ms, "sip options"),
    }
    result
}

/// The OPTIONS transaction, with one digest round.
async fn ask(shared: &Shared, target: &Target) -> Result<Vec<String>, ProbeError> {
    let endpoint = shared.endpoint();
    let bad_uri = |e: rsip::Error| ProbeError::Protocol(e.to_string());
    let callee = rsip::Uri::try_from(target.uri.as_str()).map_err(bad_uri)?;
    let destination = target.destination(shared).map_err(map_error)?;
    let transport = destination.r#type.unwrap_or(rsip::Transport::Udp);
    let (caller_user, credential) = shared.caller();
    let caller = rsip::Uri::try_from(format!("sip:{caller_user}@{}", shared.config.domain).as_str()).map_err(bad_uri)?;
    // The Via names the transport the request travels on (RFC 3261 §18.1.1): our TCP
    // listener for TCP, the UDP socket (the endpoint's first address) otherwise.
    let via_addr = (transport != rsip::Transport::Udp)
        .then(|| endpoint.transport_layer.get_listen_addrs().into_iter().find(|a| a.r#type == Some(transport)))
        .flatten();
    let via = endpoint.get_via(via_addr, None).map_err(map_error)?;
    let from = rsip::typed::From { display_name: None, uri: caller, params: vec![] }.with_tag(make_tag());
    let to = rsip::typed::To { display_name: None, uri: callee.clone(), params: vec![] };
    let mut seq = 1;
    let mut request = endpoint.make_request(Method::Options, callee, via, from, to, seq, None);
    let contact = shared.contact(&caller_user, transport).map_err(map_error)?;
    request.headers.push(rsip::typed::Contact { display_name: None, uri: contact, params: vec![] }.into());
    request.headers.push(Header::Accept("application/sdp".into()));
    let key = TransactionKey::from_request(&request, TransactionRole::Client).map_err(map_error)?;
    let mut tx = Transaction::new_client(key, request, endpoint.clone(), None);
    tx.destination = Some(destination);
    tx.send().await.map_err(map_error)?;
    let mut challenged = false;
    while let Some(message) = tx.receive().await {
        let SipMessage::Response(resp) = message else { continue };
        match resp.status_code.kind() {
            StatusCodeKind::Provisional => continue,
            StatusCodeKind::Successful => return describe(&resp),
            _ => {}
        }
        let challenge = matches!(resp.status_code, StatusCode::Unauthorized | StatusCode::ProxyAuthenticationRequired);
        if let (true, false, Some(credential)) = (challenge, challenged, &credential) {
            challenged = true;
            seq += 1;
            tx = handle_client_authenticate(seq, &tx, resp, credential).await.map_err(map_error)?;
            tx.send().await.map_err(map_error)?;
            continue;
        }
        return Err(ProbeError::Rejected { code: resp.status_code.code(), reason: resp.status_code.text().to_string() });
    }
    Err(ProbeError::Transport("the OPTIONS transaction ended without a final response".into()))
}

/// The protocols of a `2xx` to OPTIONS: see [`super::SipAgent::probe`].
fn describe(resp: &rsip::Response) -> Result<Vec<String>, ProbeError> {
    let content_type = resp.headers.iter().find_map(|h| match h {
        Header::ContentType(c) => Some(c.value().trim().to_ascii_lowercase()),
        _ => None,
    });
    let sdp = content_type.as_deref().is_none_or(|t| t.starts_with("application/sdp"));
    if resp.body.is_empty() || !sdp {
        return Err(ProbeError::NoDescription);
    }
    let description = SessionDescription::parse(&resp.body).map_err(|e| ProbeError::BadDescription(e.to_string()))?;
    Ok(read_capabilities(&description))
}

/// rsipstack errors of the OPTIONS transaction: transport and transaction failures versus the
/// rest, as for an INVITE.
fn map_error(e: rsipstack::Error) -> ProbeError {
    match e {
        rsipstack::Error::TransportLayerError(..)
        | rsipstack::Error::TransactionError(..)
        | rsipstack::Error::DnsResolutionError(..)
        | rsipstack::Error::IoError(..) => ProbeError::Transport(e.to_string()),
        e => ProbeError::Protocol(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(values: &[&str]) -> bool {
        accepts_sdp(&values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn sdp_is_sent_unless_the_request_accepts_something_else_only() {
        assert!(accepts(&[]), "no Accept: application/sdp (RFC 3261 §20.1)");
        assert!(accepts(&["application/sdp"]));
        assert!(accepts(&["text/plain, Application/SDP;level=1"]));
        assert!(accepts(&["text/plain", "application/*"]));
        assert!(accepts(&["*/*"]));
        assert!(!accepts(&[""]), "an empty Accept accepts nothing");
        assert!(!accepts(&["application/pidf+xml"]));
    }

    #[test]
    fn a_2xx_describes_the_protocols_only_with_an_sdp_body() {
        let ok = |content_type: Option<&str>, body: &str| {
            let mut headers = rsip::Headers::default();
            if let Some(t) = content_type {
                headers.push(Header::ContentType(t.into()));
            }
            let resp = rsip::Response {
                status_code: StatusCode::OK,
                wire_reason: None,
                version: rsip::Version::V2,
                headers,
                body: body.as_bytes().to_vec(),
            };
            describe(&resp)
        };
        let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.4\r\ns=-\r\nc=IN IP4 192.0.2.4\r\nt=0 0\r\nm=application 0 TCP http smtp\r\n";
        assert_eq!(ok(Some("application/sdp"), sdp), Ok(vec!["http".to_owned(), "smtp".to_owned()]));
        assert_eq!(ok(None, sdp), Ok(vec!["http".to_owned(), "smtp".to_owned()]));
        let phone = sdp.replace("m=application 0 TCP http smtp", "m=audio 0 RTP/AVP 0");
        assert_eq!(ok(Some("application/sdp"), &phone), Ok(vec![]), "a telephone: no protocol of ours");
        assert_eq!(ok(Some("application/sdp"), ""), Err(ProbeError::NoDescription));
        assert_eq!(ok(Some("text/plain"), "hello"), Err(ProbeError::NoDescription));
        assert!(matches!(ok(Some("application/sdp"), "v=1\r\n"), Err(ProbeError::BadDescription(_))));
    }
}
