//! Reading a config file so that every mistake is reported in one run.
//!
//! serde stops at the first error. To go on, we blank the lines the error's span covers (with
//! spaces, so every later span still points at the same line and column of the original text),
//! which makes that key fall back to its default, and parse again. A span on a table header
//! blanks the whole table. When the text finally parses, [`Config::validate`] adds the semantic
//! errors. The number of rounds is bounded, so a pathological file cannot loop.

use std::fmt;
use std::path::Path;

use super::{Config, Files};

const MAX_ROUNDS: usize = 100;

/// Every problem found in a config, each with its line and column when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    file: Option<String>,
    errors: Vec<String>,
}

impl ConfigErrors {
    /// Errors with no position (validation, unreadable file).
    pub fn plain(errors: Vec<String>) -> ConfigErrors {
        ConfigErrors { file: None, errors }
    }

    /// Name the file the errors come from.
    pub fn in_file(mut self, path: &Path) -> ConfigErrors {
        self.file = Some(path.display().to_string());
        self
    }

    /// The individual messages.
    pub fn errors(&self) -> &[String] {
        &self.errors
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        let file = self.file.as_deref().unwrap_or("config");
        writeln!(f, "{file}: {n} error{}", if n == 1 { "" } else { "s" })?;
        for e in &self.errors {
            writeln!(f, "  {file}:{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

pub(super) fn from_toml(original: &str, files: Files) -> Result<Config, ConfigErrors> {
    let mut text = original.to_owned();
    // (line, column, message): sorted into file order at the end.
    let mut errors: Vec<(usize, usize, String)> = Vec::new();
    let finish = |mut errors: Vec<(usize, usize, String)>, more: Vec<String>| {
        errors.sort();
        let mut all: Vec<String> = errors.into_iter().map(|(_, _, e)| e).collect();
        all.extend(more.into_iter().map(|e| format!(" {e}")));
        ConfigErrors::plain(all)
    };
    for _ in 0..MAX_ROUNDS {
        match toml::from_str::<Config>(&text) {
            Ok(config) => {
                let semantic = config.validate_with(files);
                return if errors.is_empty() && semantic.is_empty() { Ok(config) } else { Err(finish(errors, semantic)) };
            }
            Err(e) => {
                let message = e.message().trim().replace('\n', " ");
                let Some(span) = e.span().filter(|s| s.start < text.len()) else {
                    errors.push((0, 0, format!(" {message}")));
                    break;
                };
                let (line, col) = line_col(original, span.start);
                let source_line = original.lines().nth(line - 1).unwrap_or("").trim();
                let entry = (line, col, format!("{line}:{col}: {message}\n      | {source_line}"));
                let repeated = errors.contains(&entry);
                if !repeated {
                    errors.push(entry);
                }
                if repeated || !blank(&mut text, span) {
                    // No progress possible (for example a syntax error we cannot step over).
                    break;
                }
            }
        }
    }
    Err(finish(errors, Vec::new()))
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..floor_char(text, offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn floor_char(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Replace the lines covered by `span` with spaces; a span on a `[table]` header blanks the
/// table up to the next header. Returns false if nothing changed.
fn blank(text: &mut String, span: std::ops::Range<usize>) -> bool {
    let start = text[..floor_char(text, span.start)].rfind('\n').map_or(0, |i| i + 1);
    let mut end = text[floor_char(text, span.end.max(span.start + 1))..]
        .find('\n')
        .map_or(text.len(), |i| floor_char(text, span.end.max(span.start + 1)) + i);
    if text[start..].trim_start().starts_with('[') {
        // The table's body runs to the next header line.
        let mut pos = end;
        while pos < text.len() {
            let line_end = text[pos + 1..].find('\n').map_or(text.len(), |i| pos + 1 + i);
            if text[pos + 1..line_end].trim_start().starts_with('[') {
                break;
            }
            pos = line_end;
        }
        end = pos;
    }
    // Spaces byte for byte, so offsets after this point do not move.
    let blanked: String = text[start..end].chars().map(|c| if c == '\n' { "\n".to_owned() } else { " ".repeat(c.len_utf8()) }).collect();
    if text[start..end].trim().is_empty() {
        return false;
    }
    text.replace_range(start..end, &blanked);
    true
}
