//! The one printer: every command hands it rows and it prints them as `-w simple|json|table|fields`.

use std::fmt::Write as _;

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
}
