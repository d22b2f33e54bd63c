//! The routing table endpoints of the admin API (see [`crate::tables`] for what each does):
//!
//! - `GET /routes`, `POST /routes` (`{"key", "number", "name"}`; `201` when new, `200` when it
//!   replaced an entry), `DELETE /routes/{key}` (answers the removed entry),
//!   `POST /routes/import` (the CSV text as body; all or nothing), `GET /routes/export` (CSV);
//! - the same under `/keywords`;
//! - `GET /prefixes`, `POST /prefixes` (`{"digits", "length"}`), `DELETE /prefixes/{digits}`.
//!
//! `import` and `export` are collection actions, not keys, for the methods they are used with:
//! `DELETE /routes/import` still removes a domain named `import`.
//!
//! An import body may be up to [`MAX_IMPORT`]; every other request keeps the API's 64 KiB.
//! Every change is durable before it is answered. Operator mistakes are answered `400`/`404`
//! with the same words the CLI prints when it opens the store itself.

use sipmta_store::Table;
use tracing::{error, info};

use super::{INTERNAL, Reply, parse_body, store_error};
use crate::admin::http::Request;
use crate::tables::{self, NewEntry, NewPrefix, TableError};

/// Largest import body. A table of 100,000 entries (the size DESIGN.md asks the rules to stay
/// fast with) is 5-10 MiB of CSV; an import must come in one request to be all or nothing, so
/// it cannot be split under the usual 64 KiB. Only an authenticated request gets this limit
/// (see [`super::body_limit`]), so a client without the token cannot make the daemon buffer it.
pub const MAX_IMPORT: usize = 16 << 20;

/// A table endpoint after the path is split and its names decoded.
pub(super) enum Endpoint {
    /// `/routes` or `/keywords`.
    Table(Table),
    /// `/routes/{key}` or `/keywords/{keyword}` (also `import` and `export`).
    Entry(Table, String),
    /// `/prefixes`.
    Prefixes,
    /// `/prefixes/{digits}`.
    Prefix(String),
}

impl Endpoint {
    /// Match the path's segments (already split, names still encoded).
    pub(super) fn parse(segments: &[&str], decode: impl Fn(&str) -> Result<String, Reply>) -> Option<Result<Endpoint, Reply>> {
        let table = |name: &str| match name {
            "routes" => Some(Table::Routes),
            "keywords" => Some(Table::Keywords),
            _ => None,
        };
        Some(match segments {
            ["prefixes"] => Ok(Endpoint::Prefixes),
            ["prefixes", digits] => decode(digits).map(Endpoint::Prefix),
            [name] => Ok(Endpoint::Table(table(name)?)),
            [name, key] => {
                let table = table(name)?;
                decode(key).map(|k| Endpoint::Entry(table, k))
            }
            _ => return None,
        })
    }

    /// The methods it answers (for `405` and `Allow`).
    pub(super) fn allow(&self) -> &'static str {
        match self {
            Endpoint::Table(_) | Endpoint::Prefixes => "GET, POST",
            Endpoint::Entry(_, key) if key == "import" => "POST, DELETE",
            Endpoint::Entry(_, key) if key == "export" => "GET, DELETE",
            Endpoint::Entry(..) | Endpoint::Prefix(_) => "DELETE",
        }
    }
}

/// Whether a request is an import, which may carry up to [`MAX_IMPORT`].
pub(super) fn is_import(request: &Request) -> bool {
    request.method == "POST" && matches!(request.path.as_str(), "/routes/import" | "/keywords/import")
}

/// Serve a table endpoint; `None` when the method is not one it answers.
pub(super) async fn handle(request: &Request, endpoint: &Endpoint, store: sipmta_store::Store, country_code: &str) -> Option<Reply> {
    let cc = country_code.to_owned();
    let reply = match (request.method.as_str(), endpoint) {
        ("GET", Endpoint::Table(table)) => {
            let table = *table;
            blocking(move || tables::list(&store, table)).await.map(|entries| Reply::json(200, &entries))
        }
        ("POST", Endpoint::Table(table)) => add(request, *table, store, cc).await,
        ("POST", Endpoint::Entry(table, key)) if key == "import" => import(request, *table, store, cc).await,
        ("GET", Endpoint::Entry(table, key)) if key == "export" => {
            let table = *table;
            blocking(move || tables::export(&store, table)).await.map(|csv| Reply {
                status: 200,
                headers: vec![("Content-Type", "text/csv; charset=utf-8")],
                body: csv.into_bytes(),
            })
        }
        ("DELETE", Endpoint::Entry(table, key)) => {
            let (table, key) = (*table, key.clone());
            let removed = blocking(move || tables::remove(&store, table, &key)).await;
            removed.map(|entry| {
                info!(table = table.noun(), key = %entry.key, tel = %entry.tel, "routing table entry removed");
                Reply::json(200, &entry)
            })
        }
        ("GET", Endpoint::Prefixes) => blocking(move || tables::prefixes(&store)).await.map(|p| Reply::json(200, &p)),
        ("POST", Endpoint::Prefixes) => add_prefix(request, store, cc).await,
        ("DELETE", Endpoint::Prefix(digits)) => {
            let digits = digits.clone();
            let removed = blocking(move || tables::remove_prefix(&store, &cc, &digits)).await;
            removed.map(|r| {
                info!(prefix = %r.prefix.digits, length = r.prefix.length, in_use = r.in_use, "number prefix removed");
                Reply::json(200, &r)
            })
        }
        _ => return None,
    };
    Some(reply.unwrap_or_else(|e| e))
}

async fn add(request: &Request, table: Table, store: sipmta_store::Store, cc: String) -> Result<Reply, Reply> {
    let new: NewEntry = parse_body(&request.body)?;
    let set = blocking(move || tables::add(&store, &cc, table, &new)).await?;
    info!(table = table.noun(), key = %set.entry.key, tel = %set.entry.tel, replaced = set.replaced.is_some(), "routing table entry set");
    Ok(Reply::json(if set.replaced.is_some() { 200 } else { 201 }, &set))
}

async fn import(request: &Request, table: Table, store: sipmta_store::Store, cc: String) -> Result<Reply, Reply> {
    let body = request.body.clone();
    let report = blocking(move || tables::import(&store, &cc, table, &body)).await?;
    info!(table = table.noun(), added = report.added, updated = report.updated, "routing table imported");
    Ok(Reply::json(200, &report))
}

async fn add_prefix(request: &Request, store: sipmta_store::Store, cc: String) -> Result<Reply, Reply> {
    let NewPrefix { digits, length } = parse_body(&request.body)?;
    let set = blocking(move || tables::add_prefix(&store, &cc, &digits, length)).await?;
    info!(prefix = %set.prefix.digits, length = set.prefix.length, previous = ?set.previous, "number prefix set");
    Ok(Reply::json(if set.previous.is_some() { 200 } else { 201 }, &set))
}

/// Run a table operation on the blocking pool, mapping its errors to answers: the operator's
/// mistakes in the operation's own words, failures as a bland `500`.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, TableError> + Send + 'static) -> Result<T, Reply> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(TableError::Store(e))) => Err(store_error(e)),
        Ok(Err(e)) if e.is_refusal() => Err(Reply::error(400, e.to_string())),
        Ok(Err(e)) => {
            error!(error = %e, "admin table request failed");
            Err(Reply::error(500, INTERNAL))
        }
        Err(e) => {
            error!(error = %e, "admin table task failed");
            Err(Reply::error(500, INTERNAL))
        }
    }
}
