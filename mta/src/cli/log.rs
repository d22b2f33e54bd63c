//! `sipmta log QUEUE_ID [FILE...]`: follow one message through the daemon's log.
//!
//! The daemon writes one line per reception (`message accepted`) and per delivery attempt
//! (`delivery`, with route, result and the remote reply), each with the message's `queue_id`,
//! as text (`queue_id=...`) or JSON (`"queue_id":"..."`, `log.format = "json"`). This reads
//! log lines from the files named or from standard input (`journalctl -u sipmta -o cat |
//! sipmta log ID`) and prints the ones about the message unchanged, in their order. A report
//! queued about it (a DSN or MDN, logged with `dsn_id`) is followed too, so its own delivery
//! shows. The history (`sipmta queue show`, `sipmta history`) tells the same story while the
//! store keeps it (`spool.history_retention`); the log keeps it as long as the operator does.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use sipmta_store::QueueId;

/// Which message, and where its log is.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// The message's queue id (as in the 250 reply, `sipmta queue list` or the log).
    #[arg(value_parser = queue_id)]
    pub id: String,
    /// Log files (text or JSON lines, mixed is fine); standard input when none is named.
    pub files: Vec<PathBuf>,
    /// Only the message's own lines, not those of the reports (DSNs, MDNs) queued about it.
    #[arg(long)]
    pub no_reports: bool,
}

fn queue_id(text: &str) -> Result<String, String> {
    text.parse::<QueueId>().map(|id| id.to_string()).map_err(|_| format!("{text:?} is not a queue id (16 hex digits)"))
}

pub fn run(args: &LogArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let mut follow = Follow::new(&args.id, !args.no_reports);
    if args.files.is_empty() {
        follow.read(std::io::stdin().lock(), &mut out)?;
    } else {
        for path in &args.files {
            let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            follow.read(std::io::BufReader::new(file), &mut out).with_context(|| format!("reading {}", path.display()))?;
        }
    }
    if follow.found == 0 {
        anyhow::bail!("no log line about {} (is the log filter at least `info`?)", args.id);
    }
    Ok(())
}

/// The ids being followed and how many lines matched.
struct Follow {
    ids: HashSet<String>,
    reports: bool,
    found: usize,
}

impl Follow {
    fn new(id: &str, reports: bool) -> Follow {
        Follow { ids: HashSet::from([id.to_owned()]), reports, found: 0 }
    }

    fn read(&mut self, input: impl BufRead, out: &mut dyn Write) -> Result<()> {
        for line in input.split(b'\n') {
            // Lossy: a log line with a stray byte must not end the search.
            let line = String::from_utf8_lossy(&line?).into_owned();
            let (queue, report) = ids(&line);
            if queue.as_ref().is_some_and(|q| self.ids.contains(q)) || report.as_ref().is_some_and(|r| self.ids.contains(r)) {
                if self.reports
                    && let Some(report) = report
                {
                    self.ids.insert(report);
                }
                self.found += 1;
                writeln!(out, "{}", line.trim_end_matches('\r'))?;
            }
        }
        Ok(())
    }
}

/// The `queue_id` and `dsn_id` a log line names, text or JSON.
fn ids(line: &str) -> (Option<String>, Option<String>) {
    let trimmed = line.trim_start();
    if trimmed.starts_with('{')
        && let Ok(serde_json::Value::Object(map)) = serde_json::from_str(trimmed)
    {
        let field = |name: &str| {
            // Flattened events carry it at the top; a span's field under "span".
            map.get(name).or_else(|| map.get("span").and_then(|s| s.get(name))).and_then(|v| v.as_str()).map(str::to_owned)
        };
        return (field("queue_id"), field("dsn_id"));
    }
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|token| token.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
            .map(|v| v.trim_matches(|c| c == '"' || c == ',' || c == '}').to_owned())
    };
    (field("queue_id"), field("dsn_id"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ID: &str = "6A1F0B2C00000007";
    const DSN: &str = "6A1F0B3000000009";

    fn follow(input: &str, reports: bool) -> String {
        let mut out = Vec::new();
        let mut f = Follow::new(ID, reports);
        f.read(input.as_bytes(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_lines_about_the_message_and_its_reports_are_kept_in_order() {
        let log = format!(
            "2026-11-21T10:00:00Z  INFO session{{peer=127.0.0.1:5}}: message accepted queue_id={ID} from=a@b rcpts=1\n\
             2026-11-21T10:00:00Z  INFO message accepted queue_id=6A1F0B2C00000008 from=c@d\n\
             2026-11-21T10:00:01Z  INFO delivery queue_id={ID} rcpt=x@y route=\"relay\" result=\"failed\" reply=550 5.1.1 no\n\
             2026-11-21T10:00:01Z  INFO failed DSN queued queue_id={ID} dsn_id={DSN} report=\"failed DSN\"\n\
             2026-11-21T10:00:02Z  INFO delivery queue_id={DSN} rcpt=a@b route=\"local\" result=\"delivered\"\n"
        );
        let kept = follow(&log, true);
        assert_eq!(kept.lines().count(), 4, "{kept}");
        assert!(!kept.contains("00000008"), "{kept}");
        assert!(kept.lines().last().unwrap().contains(&format!("queue_id={DSN}")), "the DSN's own delivery: {kept}");
        assert_eq!(follow(&log, false).lines().count(), 3, "without reports, the queued line is still about the message");
    }

    #[test]
    fn json_lines_are_matched_by_field_not_by_text() {
        let log = format!(
            "{{\"level\":\"INFO\",\"message\":\"message accepted\",\"queue_id\":\"{ID}\"}}\n\
             {{\"level\":\"INFO\",\"message\":\"delivery\",\"queue_id\":\"6A1F0B2C00000008\",\"reply\":\"250 queued as {ID}\"}}\n\
             {{\"level\":\"INFO\",\"message\":\"failed DSN queued\",\"queue_id\":\"{ID}\",\"dsn_id\":\"{DSN}\"}}\n\
             {{\"level\":\"INFO\",\"message\":\"delivery\",\"queue_id\":\"{DSN}\",\"result\":\"delivered\"}}\n"
        );
        let kept = follow(&log, true);
        assert_eq!(kept.lines().count(), 3, "{kept}");
        assert!(!kept.contains("00000008"), "a mention in a reply is not the message: {kept}");
    }

    #[test]
    fn a_bad_queue_id_is_refused_with_a_reason() {
        assert!(queue_id("xyz").unwrap_err().contains("not a queue id"));
        assert_eq!(queue_id(ID).unwrap(), ID);
    }
}
