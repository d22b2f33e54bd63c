//! The CSV form of the address/domain and keyword tables, read by `sipmta route import` and
//! written by `sipmta route export` (the same for keywords). Sans-IO: bytes in, rows out.
//!
//! # Format
//!
//! ```text
//! # Routes for the Kyoto office            <- a comment: the line starts with #
//! key,number,name                          <- optional header, only as the first record
//! abc@efg.com,050-1234-5678,Kyoto office
//! efg.com,+81 80 0000 9999                 <- the name is optional
//! KYOTOBRANCHOFFICE,０５０－１２３４－５６７８,"Kyoto, branch ""A"""
//!                                          <- blank lines are ignored
//! ```
//!
//! - One record per line: `key,number` or `key,number,name`. Lines end with LF or CRLF; a
//!   UTF-8 byte order mark at the start is ignored (spreadsheets write one).
//! - Fields may be double-quoted as in RFC 4180 §2 so they can hold commas and quotes (a quote
//!   inside is doubled); spaces around a field are dropped unless they are inside the quotes.
//!   Unlike RFC 4180 a quoted field cannot span lines: keys and names have no line breaks.
//! - A line whose first character is `#` is a comment; a key that starts with `#` is written
//!   quoted (`"#kyoto",...`), so it is not taken for one.
//! - The text must be UTF-8 (convert Shift_JIS files first, e.g. `iconv -f SHIFT_JIS -t UTF-8`).
//!
//! [`write`] produces exactly this format, header included, with numbers in E.164, so an export
//! imports again unchanged.

use sipmta_store::TableEntry;

/// The header line [`write`] puts first and [`parse`] skips.
pub const HEADER: &str = "key,number,name";

/// One record as read, before its fields are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Its line number (from 1).
    pub line: usize,
    /// The key (address, domain or keyword).
    pub key: String,
    /// The number as written.
    pub number: String,
    /// The name, if the line has a third field that is not empty.
    pub name: Option<String>,
}

/// A line that is not a record, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// Its line number (from 1).
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// Read every record of `text`; every line that cannot be read is reported, not only the first.
pub fn parse(text: &[u8]) -> (Vec<Row>, Vec<BadLine>) {
    let text = text.strip_prefix("\u{feff}".as_bytes()).unwrap_or(text);
    let (mut rows, mut bad) = (Vec::new(), Vec::new());
    let mut first_record = true;
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(content) = std::str::from_utf8(raw) else {
            bad.push(BadLine { line, reason: "not UTF-8 text (convert the file, e.g. iconv -f SHIFT_JIS -t UTF-8)".into() });
            first_record = false;
            continue;
        };
        if content.trim().is_empty() || content.starts_with('#') {
            continue;
        }
        let is_first = std::mem::replace(&mut first_record, false);
        let fields = match fields(content) {
            Ok(f) => f,
            Err(reason) => {
                bad.push(BadLine { line, reason });
                continue;
            }
        };
        if is_first && is_header(&fields) {
            continue;
        }
        match <[String; 3]>::try_from(fields) {
            Ok([key, number, name]) => rows.push(Row { line, key, number, name: (!name.is_empty()).then_some(name) }),
            Err(fields) => match <[String; 2]>::try_from(fields) {
                Ok([key, number]) => rows.push(Row { line, key, number, name: None }),
                Err(fields) => {
                    let reason = format!("expected key,number or key,number,name but found {} fields", fields.len());
                    bad.push(BadLine { line, reason });
                }
            },
        }
    }
    (rows, bad)
}

fn is_header(fields: &[String]) -> bool {
    let names: Vec<String> = fields.iter().map(|f| f.to_ascii_lowercase()).collect();
    names == ["key", "number", "name"] || names == ["key", "number"]
}

/// Split one line into fields (RFC 4180 §2 quoting, spaces outside quotes dropped).
fn fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        let mut field = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    None => return Err(format!("field {} has an opening quote but no closing one", out.len() + 1)),
                    // A doubled quote is one quote (RFC 4180 §2 rule 7).
                    Some('"') if chars.next_if_eq(&'"').is_some() => field.push('"'),
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
            match chars.next() {
                None => {
                    out.push(field);
                    return Ok(out);
                }
                Some(',') => out.push(field),
                Some(c) => return Err(format!("field {} has {c:?} after its closing quote", out.len() + 1)),
            }
        } else {
            let mut ended = true;
            for c in chars.by_ref() {
                if c == ',' {
                    ended = false;
                    break;
                }
                field.push(c);
            }
            if field.contains('"') {
                return Err(format!(
                    "field {} has a quote inside; quote the whole field and double the quote (\"a \"\"b\"\"\")",
                    out.len() + 1
                ));
            }
            out.push(field.trim().to_owned());
            if ended {
                return Ok(out);
            }
        }
    }
}

/// The table in the import format: the header, then one line per entry in the order given.
pub fn write(entries: &[TableEntry]) -> String {
    let mut out = format!("{HEADER}\n");
    for e in entries {
        out.push_str(&quote(&e.key));
        out.push(',');
        out.push_str(&e.tel.0);
        if let Some(name) = &e.name {
            out.push(',');
            out.push_str(&quote(name));
        }
        out.push('\n');
    }
    out
}

/// A field as [`parse`] reads it back: quoted when it holds a comma or quote, starts with `#`
/// (it would be a comment at the start of a line) or has spaces at either end (they would be
/// dropped).
fn quote(field: &str) -> String {
    let needs = field.contains([',', '"']) || field.starts_with('#') || field.trim() != field || field.is_empty();
    if needs { format!("\"{}\"", field.replace('"', "\"\"")) } else { field.to_owned() }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use sipmta_rules::number::E164;

    use super::*;

    fn row(line: usize, key: &str, number: &str, name: Option<&str>) -> Row {
        Row { line, key: key.into(), number: number.into(), name: name.map(str::to_owned) }
    }

    #[test]
    fn records_comments_header_and_quotes() {
        let text = "\u{feff}# comment\r\nkey,number,name\r\n\r\nabc@efg.com, 050-1234-5678 ,Kyoto office\r\n\
                    efg.com,+81 80 0000 9999\n  \n\"KYOTO, \"\"A\"\"\" , \"０５０\" , \" spaced \"\n\"#kw\",1,\n";
        let (rows, bad) = parse(text.as_bytes());
        assert_eq!(bad, vec![]);
        assert_eq!(
            rows,
            vec![
                row(4, "abc@efg.com", "050-1234-5678", Some("Kyoto office")),
                row(5, "efg.com", "+81 80 0000 9999", None),
                row(7, "KYOTO, \"A\"", "０５０", Some(" spaced ")),
                row(8, "#kw", "1", None),
            ]
        );
    }

    #[test]
    fn the_header_counts_only_as_the_first_record() {
        let (rows, bad) = parse(b"a.example,1\nkey,number,name\n");
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert!(bad.is_empty());
        let (rows, _) = parse(b"# c\nKey,Number\nb.example,2\n");
        assert_eq!(rows, vec![row(3, "b.example", "2", None)]);
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let text = b"a.example,1\nonly-a-key\n\"open,1\nx\"y,1\na,b,c,d\n\"k\"junk,1\nb.example,\xff\xfe\nc.example,3\n";
        let (rows, bad) = parse(text);
        assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), [1, 8]);
        let lines: Vec<(usize, &str)> = bad.iter().map(|b| (b.line, b.reason.as_str())).collect();
        assert_eq!(
            lines,
            [
                (2, "expected key,number or key,number,name but found 1 fields"),
                (3, "field 1 has an opening quote but no closing one"),
                (4, "field 1 has a quote inside; quote the whole field and double the quote (\"a \"\"b\"\"\")"),
                (5, "expected key,number or key,number,name but found 4 fields"),
                (6, "field 1 has 'j' after its closing quote"),
                (7, "not UTF-8 text (convert the file, e.g. iconv -f SHIFT_JIS -t UTF-8)"),
            ]
        );
    }

    #[test]
    fn written_tables_read_back_the_same() {
        let entry = |key: &str, name: Option<&str>| TableEntry {
            key: key.into(),
            tel: E164("+815012345678".into()),
            name: name.map(Into::into),
            added: 1,
        };
        let entries = vec![
            entry("abc@efg.com", Some("Kyoto office")),
            entry("efg.com", None),
            entry("#hash", Some("a, \"quoted\" name")),
            entry("京都支店", Some(" padded ")),
        ];
        let text = write(&entries);
        assert!(text.starts_with("key,number,name\nabc@efg.com,+815012345678,Kyoto office\nefg.com,+815012345678\n"), "{text}");
        assert!(text.contains("\"#hash\",+815012345678,\"a, \"\"quoted\"\" name\"\n"), "{text}");
        let (rows, bad) = parse(text.as_bytes());
        assert!(bad.is_empty(), "{bad:?}");
        let back: Vec<(String, Option<String>)> = rows.into_iter().map(|r| (r.key, r.name)).collect();
        let want: Vec<(String, Option<String>)> = entries.into_iter().map(|e| (e.key, e.name)).collect();
        assert_eq!(back, want);
    }

    #[test]
    fn no_input_panics() {
        let base = b"\"a,\"\"b\"\",c\",\"d\" , e\r\n#x\n";
        for i in 0..base.len() {
            for b in [b'"', b',', b'\r', b'\n', b' ', b'#', 0xff] {
                let mut v = base.to_vec();
                v[i] = b;
                let _ = parse(&v);
                let _ = parse(&v[..i]);
            }
        }
    }
}
