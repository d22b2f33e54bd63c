//! Routing at reception (issue 4 item 5): the daemon's copy of the rules tables, rebuilt when
//! the store's tables change, and the decision for a message's recipients.
//!
//! The tables are built from the store on first use and rebuilt whenever the store's
//! generation counter moved (every `route`, `keyword`, `prefix` or learned-number change bumps
//! it); building a 100k-entry table takes tens of milliseconds (65-76 ms
//! measured, rules/BENCHMARK.md), and the message that triggers a rebuild waits for it. A failure to build is logged and the previous copy (or empty tables) is used:
//! routing must never be the reason mail is refused.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sipmta_rules::{Decision, Entry, Evidence, MessageView, NumberPlan, Route, TableData, Tables, decide, needs_message};
use sipmta_store::{Store, StoreError, Table};
use tracing::{info, warn};

use crate::config::Config;

/// The daemon's routing tables.
#[derive(Debug)]
pub struct Routing {
    store: Store,
    country_code: String,
    scan_limit: usize,
    learned_lifetime: u64,
    cache: Mutex<Option<(u64, Arc<Tables>)>>,
}

/// What `sipmta route explain` shows: the decision for one recipient and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// The recipient asked about.
    pub rcpt: String,
    /// Where its copy would go.
    pub route: Route,
    /// The number in national form (`050-1234-5678`) for a fast-path route.
    pub national: Option<String>,
    /// Why, in words.
    pub evidence: String,
    /// Whether a message was given (without one, header and body evidence cannot apply).
    pub with_message: bool,
    /// When a learned entry decided: when and from what it was learned, and when it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned: Option<LearnedDetail>,
}

/// The learned entry behind a decision (`sipmta route explain`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedDetail {
    /// When it was learned or last confirmed (Unix seconds).
    pub at: u64,
    /// When it will be forgotten unless confirmed again (Unix seconds).
    pub expires: u64,
    /// The proof it was learned from.
    pub evidence: String,
}

/// Decide one recipient with `tables`, reading `message` when one is given; a learned
/// entry's details come from `store`.
pub fn explain(config: &Config, store: &Store, tables: &Tables, plan: &NumberPlan, rcpt: &str, message: Option<&[u8]>) -> Explanation {
    let is_local = |domain: &str| config.is_local_domain(domain);
    let view = message.map(|m| MessageView::parse(m, config.routing.scan_limit.0 as usize));
    let decision = decide(&[rcpt.to_owned()], &is_local, view.as_ref(), tables).pop();
    let learned = match decision.as_ref().map(|d| &d.evidence) {
        Some(Evidence::Learned { address, .. }) => store.learned_entry(address).ok().flatten().map(|l| LearnedDetail {
            at: l.at,
            expires: l.at.saturating_add(config.learning.lifetime.0.as_secs()),
            evidence: l.evidence,
        }),
        _ => None,
    };
    let (route, evidence) = match decision {
        Some(d) => (d.route, d.evidence.to_string()),
        None => (Route::Relay, "no decision".to_owned()),
    };
    let national = match &route {
        Route::Fast { tel } => crate::tables::national(plan, &sipmta_rules::E164(tel.clone())),
        _ => None,
    };
    Explanation { rcpt: rcpt.to_owned(), route, national, evidence, with_message: message.is_some(), learned }
}

/// [`explain`] on the store's tables as they are now (for the CLI when no daemon runs).
pub fn explain_from_store(config: &Config, store: &Store, rcpt: &str, message: Option<&[u8]>) -> anyhow::Result<Explanation> {
    let data = load(store, &config.routing.country_code, config.learning.lifetime.0.as_secs())?;
    let plan = data.plan.clone();
    let tables = Tables::build(data)?;
    Ok(explain(config, store, &tables, &plan, rcpt, message))
}

/// Read the store's tables into the rules' form; learned numbers older than `lifetime` seconds
/// are left out (the sweep forgets them soon, see [`crate::learn::sweep`]).
pub fn load(store: &Store, country_code: &str, lifetime: u64) -> Result<TableData, StoreError> {
    let entries = |table| -> Result<Vec<(String, Entry)>, StoreError> {
        Ok(store.entries(table)?.into_iter().map(|e| (e.key, Entry { tel: e.tel, name: e.name })).collect())
    };
    let cutoff = sipmta_store::now().saturating_sub(lifetime);
    let mut learned: Vec<(String, sipmta_store::Learned)> = store.learned()?.into_iter().filter(|(_, l)| l.at >= cutoff).collect();
    learned.sort_by_key(|(_, l)| l.at);
    Ok(TableData {
        plan: store.number_plan(country_code)?,
        addresses: entries(Table::Routes)?,
        keywords: entries(Table::Keywords)?,
        learned: learned.into_iter().map(|(address, l)| (address, Entry { tel: l.tel, name: None })).collect(),
    })
}

/// Tables with nothing in them but the default number plan: every non-local recipient is
/// relayed unless its address carries a number.
fn empty() -> Tables {
    match Tables::build(TableData::default()) {
        Ok(t) => t,
        // Empty data has no keys to be bad; this cannot fail.
        Err(e) => unreachable!("empty routing tables failed to build: {e}"),
    }
}

impl Routing {
    /// Routing over `store` with the config's country code and scan limit.
    pub fn new(store: Store, config: &Config) -> Routing {
        Routing {
            store,
            country_code: config.routing.country_code.clone(),
            scan_limit: config.routing.scan_limit.0 as usize,
            learned_lifetime: config.learning.lifetime.0.as_secs(),
            cache: Mutex::new(None),
        }
    }

    /// The current tables, rebuilt if the store's tables changed since the last build.
    pub fn tables(&self) -> Arc<Tables> {
        let generation = self.store.tables_generation();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((built, tables)) = cache.as_ref()
            && *built == generation
        {
            return tables.clone();
        }
        let built = load(&self.store, &self.country_code, self.learned_lifetime)
            .map_err(|e| e.to_string())
            .and_then(|data| Tables::build(data).map_err(|e| e.to_string()));
        match built {
            Ok(tables) => {
                info!(generation, "routing tables loaded");
                let tables = Arc::new(tables);
                *cache = Some((generation, tables.clone()));
                tables
            }
            Err(e) => {
                warn!(error = %e, "cannot build the routing tables; keeping the previous ones");
                let previous = match cache.as_ref() {
                    Some((_, t)) => t.clone(),
                    None => Arc::new(empty()),
                };
                *cache = Some((generation, previous.clone()));
                previous
            }
        }
    }

    /// [`explain`] with the daemon's current tables.
    pub fn explain(&self, config: &Config, rcpt: &str, message: Option<&[u8]>) -> Result<Explanation, StoreError> {
        let tables = self.tables();
        let plan = self.store.number_plan(&self.country_code)?;
        Ok(explain(config, &self.store, &tables, &plan, rcpt, message))
    }

    /// Decide every recipient of a message, reading the message only when the envelope alone
    /// does not decide (DESIGN.md "Routing rules", rules 5 and 6).
    pub fn decide(&self, config: &Config, rcpts: &[String], message: &[u8]) -> Vec<Decision> {
        let tables = self.tables();
        let is_local = |domain: &str| config.is_local_domain(domain);
        let view = needs_message(rcpts, &is_local, &tables).then(|| MessageView::parse(message, self.scan_limit));
        decide(rcpts, &is_local, view.as_ref(), &tables)
    }
}
