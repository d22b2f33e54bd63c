//! `GET /learned` and `DELETE /learned/{address}`: the learned table (issue 7 item 2), the
//! numbers other sites announced and proved, for `sipmta learned list|rm`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sipmta_store::Store;
use tracing::info;

use super::{Reply, blocking};
use crate::admin::http::{Request, percent_decode};
use crate::config::Config;
use crate::smtp::Ctx;

/// One learned number as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedRow {
    /// The address mail to which goes to `tel`.
    pub address: String,
    /// The number, E.164.
    pub tel: String,
    /// When it was learned or last confirmed (Unix seconds).
    pub at: u64,
    /// When it is forgotten unless confirmed again (Unix seconds).
    pub expires: u64,
    /// What proved it.
    pub evidence: String,
}

/// The learned table with expiry times, in address order.
pub fn rows(store: &Store, config: &Config) -> Result<Vec<LearnedRow>, sipmta_store::StoreError> {
    let lifetime = config.learning.lifetime.0.as_secs();
    Ok(store
        .learned()?
        .into_iter()
        .map(|(address, l)| LearnedRow { address, tel: l.tel.0, at: l.at, expires: l.at.saturating_add(lifetime), evidence: l.evidence })
        .collect())
}

/// Whether a request is for the learned table.
pub(super) fn is_learned(request: &Request) -> bool {
    request.path == "/learned" || request.path.starts_with("/learned/")
}

pub(super) async fn handle(request: &Request, ctx: &Arc<Ctx>) -> Reply {
    let store = ctx.store.clone();
    let answer = match (request.method.as_str(), request.path.strip_prefix("/learned/")) {
        ("GET", None) => {
            let config = ctx.config.clone();
            blocking(move || rows(&store, &config)).await.map(|rows| Reply::json(200, &rows))
        }
        ("DELETE", Some(address)) => {
            let Some(address) = percent_decode(address) else {
                return Reply::error(400, "malformed percent-encoding in the path");
            };
            let key = address.clone();
            match blocking(move || store.forget(&key).and_then(|removed| store.flush().map(|()| removed))).await {
                Ok(true) => {
                    info!(address = %address, "learned number removed by the operator");
                    Ok(Reply::empty(204))
                }
                Ok(false) => Err(Reply::error(404, format!("no learned number for {address}"))),
                Err(reply) => Err(reply),
            }
        }
        (_, None) => return Reply::error(405, "use GET").with("Allow", "GET"),
        (_, Some(_)) => return Reply::error(405, "use DELETE").with("Allow", "DELETE"),
    };
    answer.unwrap_or_else(|e| e)
}
