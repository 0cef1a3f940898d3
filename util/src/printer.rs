//! The one printer: every command hands it rows and it prints them as `-w simple|json|table|fields`.
//! The auth commands' answers are not rows: etcdctl prints each its own way ([`Answer`]).

use std::fmt::Write as _;

use crate::cmd::exit::{BAD_FEATURE, with_code};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Simple,
    Json,
    Table,
    Fields,
}

/// A command's output: column titles, rows of display cells, and the JSON form.
pub struct Report {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
    pub json: serde_json::Value,
}

pub fn render(report: &Report, format: Format) -> String {
    let mut out = String::new();
    match format {
        Format::Simple => {
            for row in &report.rows {
                let _ = writeln!(out, "{}", row.join(", "));
            }
        }
        Format::Json => {
            let _ = writeln!(out, "{}", report.json);
        }
        Format::Fields => {
            for row in &report.rows {
                for (c, v) in report.columns.iter().zip(row) {
                    let _ = writeln!(out, "\"{c}\" : {v}");
                }
                out.push('\n');
            }
        }
        Format::Table => {
            let widths: Vec<usize> = (0..report.columns.len())
                .map(|i| {
                    report
                        .rows
                        .iter()
                        .map(|r| r[i].len())
                        .chain([report.columns[i].len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line: String = widths
                .iter()
                .map(|w| format!("+{}", "-".repeat(w + 2)))
                .collect::<String>()
                + "+\n";
            let fmt_row = |cells: Vec<&str>| -> String {
                cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("| {c:>w$} ", w = w))
                    .collect::<String>()
                    + "|\n"
            };
            out.push_str(&line);
            out.push_str(&fmt_row(report.columns.clone()));
            out.push_str(&line);
            for r in &report.rows {
                out.push_str(&fmt_row(r.iter().map(String::as_str).collect()));
            }
            out.push_str(&line);
        }
    }
    out
}

/// One answer as etcdctl prints it (the auth commands): bytes, since keys need not be UTF-8.
pub struct Answer {
    pub simple: Vec<u8>,
    /// The response as Go's `encoding/json` writes it (omitempty).
    pub json: serde_json::Value,
    /// `-w fields`, when etcdctl has it for this command.
    pub fields: Option<Vec<u8>>,
}

impl Answer {
    /// The answer in `format`; a format etcdctl lacks for it fails as etcdctl's does
    /// (`table not supported as output format`, exit 4).
    pub fn render(self, format: Format) -> anyhow::Result<Vec<u8>> {
        match (format, self.fields) {
            (Format::Simple, _) => Ok(self.simple),
            (Format::Json, _) => Ok(format!("{}\n", self.json).into_bytes()),
            (Format::Fields, Some(f)) => Ok(f),
            (Format::Fields, None) => Err(unsupported("fields")),
            (Format::Table, _) => Err(unsupported("table")),
        }
    }
}

fn unsupported(name: &str) -> anyhow::Error {
    with_code(
        BAD_FEATURE,
        anyhow::anyhow!("{name} not supported as output format"),
    )
}

/// `bytes` as Go's `%q` prints a string: in double quotes, with `\"`, `\\`, `\n`, `\t`...,
/// other control characters and invalid UTF-8 as `\xNN`.
pub fn go_quote(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\x07' => out.push_str("\\a"),
                '\x08' => out.push_str("\\b"),
                '\x0c' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\x0b' => out.push_str("\\v"),
                c if (c as u32) < 0x80 && c.is_control() => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if c.is_control() => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            columns: vec!["ENDPOINT", "HASH"],
            rows: vec![vec!["127.0.0.1:2379".into(), "42".into()]],
            json: serde_json::json!([{"Endpoint": "127.0.0.1:2379", "hash": 42}]),
        }
    }

    #[test]
    fn every_format() {
        assert_eq!(render(&sample(), Format::Simple), "127.0.0.1:2379, 42\n");
        assert_eq!(
            render(&sample(), Format::Fields),
            "\"ENDPOINT\" : 127.0.0.1:2379\n\"HASH\" : 42\n\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(&sample(), Format::Json)).unwrap();
        assert_eq!(json[0]["hash"], 42);
        let table = render(&sample(), Format::Table);
        assert!(table.contains("|       ENDPOINT | HASH |"), "{table}");
        assert_eq!(table.lines().count(), 5);
    }

    #[test]
    fn answers_in_the_formats_etcdctl_has() {
        let answer = |fields| Answer {
            simple: b"Role r created\n".to_vec(),
            json: serde_json::json!({"header": {"revision": 1}}),
            fields,
        };
        assert_eq!(
            answer(None).render(Format::Simple).unwrap(),
            b"Role r created\n"
        );
        assert_eq!(
            answer(None).render(Format::Json).unwrap(),
            b"{\"header\":{\"revision\":1}}\n"
        );
        assert_eq!(
            answer(Some(b"f\n".to_vec()))
                .render(Format::Fields)
                .unwrap(),
            b"f\n"
        );
        let e = answer(None).render(Format::Fields).unwrap_err();
        assert_eq!(e.to_string(), "fields not supported as output format");
        assert_eq!(crate::cmd::exit::code_of(&e), 4);
        let e = answer(Some(Vec::new())).render(Format::Table).unwrap_err();
        assert_eq!(e.to_string(), "table not supported as output format");
    }

    /// As Go's `fmt.Sprintf("%q", string(b))` (checked with etcdctl's `-w fields`).
    #[test]
    fn go_quoting() {
        assert_eq!(go_quote(b"pfx/"), "\"pfx/\"");
        assert_eq!(go_quote(b"\0"), "\"\\x00\"");
        assert_eq!(go_quote(b""), "\"\"");
        assert_eq!(go_quote(b"a\"b\\\n\t"), "\"a\\\"b\\\\\\n\\t\"");
        assert_eq!(go_quote(b"\x7f\xff"), "\"\\x7f\\xff\"");
        assert_eq!(go_quote("é".as_bytes()), "\"é\"");
    }
}
