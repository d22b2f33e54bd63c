//! `POST /routes/explain?rcpt=ADDR`: the route the running daemon would choose for a
//! recipient, with its evidence, using its live tables. The body, if any, is a message
//! (RFC 5322, as a `.eml` file holds it) whose headers and text the rules may read; it may be
//! as large as an import ([`super::tables::MAX_IMPORT`]), for a token holder only.

use std::sync::Arc;

use tracing::error;

use super::{INTERNAL, Reply};
use crate::admin::http::{Request, query_pairs};
use crate::smtp::Ctx;

/// Whether a request is an explain request.
pub(super) fn is_explain(request: &Request) -> bool {
    request.path == "/routes/explain"
}

pub(super) async fn handle(request: &Request, ctx: &Arc<Ctx>) -> Reply {
    if request.method != "POST" {
        return Reply::error(405, "use POST").with("Allow", "POST");
    }
    let Some(pairs) = query_pairs(&request.query) else {
        return Reply::error(400, "malformed query string");
    };
    let Some(rcpt) = pairs.into_iter().find(|(k, _)| k == "rcpt").map(|(_, v)| v) else {
        return Reply::error(400, "give the recipient as ?rcpt=ADDRESS");
    };
    let message = (!request.body.is_empty()).then(|| request.body.clone());
    let ctx = ctx.clone();
    let answer = tokio::task::spawn_blocking(move || ctx.routing.explain(&ctx.config, &rcpt, message.as_deref())).await;
    match answer {
        Ok(Ok(explanation)) => Reply::json(200, &explanation),
        Ok(Err(e)) => {
            error!(error = %e, "route explain failed");
            Reply::error(500, INTERNAL)
        }
        Err(e) => {
            error!(error = %e, "route explain task failed");
            Reply::error(500, INTERNAL)
        }
    }
}
