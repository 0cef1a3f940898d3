//! A benchmark's result: per kind of request, the count, errors, rate and latency
//! percentiles. `-w simple` prints a text summary (etcd's `benchmark` style), `-w json` one
//! object (the primary series at the top level, every series under `ops`), `-w table` and
//! `-w fields` one row per series through the shared printer.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::driver::Series;
use crate::printer::{self, Format, Report};

pub struct Summary {
    pub workload: &'static str,
    pub elapsed: Duration,
    /// Named series; the first is the headline (e.g. watch event latency).
    pub series: Vec<(&'static str, Series)>,
    /// Workload-specific facts printed after the series (e.g. expected events).
    pub notes: Vec<(&'static str, Value)>,
}

fn ms(d: Duration) -> f64 {
    (d.as_nanos() as f64 / 1e4).round() / 1e2
}

impl Summary {
    fn seconds(&self) -> f64 {
        self.elapsed.as_secs_f64()
    }

    fn rate(&self, s: &Series) -> f64 {
        let secs = self.seconds();
        if secs > 0.0 {
            (s.hist.count() as f64 / secs * 10.0).round() / 10.0
        } else {
            0.0
        }
    }

    fn series_json(&self, s: &Series) -> Map<String, Value> {
        let h = &s.hist;
        let mut o = Map::new();
        o.insert("requests".into(), h.count().into());
        o.insert("errors".into(), s.errors.into());
        o.insert("requests_per_second".into(), self.rate(s).into());
        o.insert(
            "latency_ms".into(),
            json!({
                "p50": ms(h.quantile(0.5)), "p90": ms(h.quantile(0.9)),
                "p99": ms(h.quantile(0.99)), "max": ms(h.max()), "mean": ms(h.mean()),
            }),
        );
        if let Some(e) = &s.first_error {
            o.insert("first_error".into(), e.clone().into());
        }
        o
    }

    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("workload".into(), self.workload.into());
        o.insert(
            "seconds".into(),
            ((self.seconds() * 1e3).round() / 1e3).into(),
        );
        if let Some((_, head)) = self.series.first() {
            o.extend(self.series_json(head));
        }
        for (k, v) in &self.notes {
            o.insert((*k).into(), v.clone());
        }
        if self.series.len() > 1 {
            let ops: Map<String, Value> = self
                .series
                .iter()
                .map(|(name, s)| ((*name).to_string(), Value::Object(self.series_json(s))))
                .collect();
            o.insert("ops".into(), Value::Object(ops));
        }
        Value::Object(o)
    }

    fn text(&self) -> String {
        let mut out = format!("{} ({:.3} s)\n", self.workload, self.seconds());
        for (name, s) in &self.series {
            let h = &s.hist;
            out += &format!(
                "  {name}: {} ok, {} errors, {:.1}/s; latency ms: p50 {:.3}, p90 {:.3}, p99 {:.3}, max {:.3}, mean {:.3}\n",
                h.count(),
                s.errors,
                self.rate(s),
                ms(h.quantile(0.5)),
                ms(h.quantile(0.9)),
                ms(h.quantile(0.99)),
                ms(h.max()),
                ms(h.mean()),
            );
            if let Some(e) = &s.first_error {
                out += &format!("  {name}: first error: {e}\n");
            }
        }
        for (k, v) in &self.notes {
            match v {
                Value::String(v) => out += &format!("  {k}: {v}\n"),
                v => out += &format!("  {k}: {v}\n"),
            }
        }
        out
    }

    pub fn render(&self, format: Format) -> String {
        if format == Format::Simple {
            return self.text();
        }
        let rows = self
            .series
            .iter()
            .map(|(name, s)| {
                let h = &s.hist;
                vec![
                    (*name).to_string(),
                    h.count().to_string(),
                    s.errors.to_string(),
                    format!("{:.3}", self.seconds()),
                    format!("{:.1}", self.rate(s)),
                    format!("{:.3}", ms(h.quantile(0.5))),
                    format!("{:.3}", ms(h.quantile(0.9))),
                    format!("{:.3}", ms(h.quantile(0.99))),
                    format!("{:.3}", ms(h.max())),
                ]
            })
            .collect();
        let report = Report {
            columns: vec![
                "OP",
                "OK",
                "ERRORS",
                "SECONDS",
                "PER SECOND",
                "P50 MS",
                "P90 MS",
                "P99 MS",
                "MAX MS",
            ],
            rows,
            json: self.to_json(),
        };
        printer::render(&report, format)
    }

    /// An error when nothing succeeded (so scripts notice a dead or refusing server).
    pub fn check(&self) -> anyhow::Result<()> {
        let ok: u64 = self.series.iter().map(|(_, s)| s.hist.count()).sum();
        let errors: u64 = self.series.iter().map(|(_, s)| s.errors).sum();
        if ok == 0 && errors > 0 {
            let first = self
                .series
                .iter()
                .find_map(|(_, s)| s.first_error.clone())
                .unwrap_or_default();
            anyhow::bail!("every request failed ({errors}); first error: {first}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_headline_at_the_top_and_every_series_under_ops() {
        let mut put = Series::default();
        for us in [100, 200, 300, 400] {
            put.hist.record(Duration::from_micros(us));
        }
        let mut get = Series::default();
        get.error(&tonic::Status::unavailable("etcdserver: no leader"));
        let s = Summary {
            workload: "mixed",
            elapsed: Duration::from_secs(2),
            series: vec![("put", put), ("range", get)],
            notes: vec![("read_ratio", 0.5.into())],
        };
        let j = s.to_json();
        assert_eq!(j["requests"], 4);
        assert_eq!(j["requests_per_second"], 2.0);
        assert_eq!(j["latency_ms"]["max"], 0.4);
        assert_eq!(j["ops"]["range"]["errors"], 1);
        assert_eq!(j["ops"]["range"]["first_error"], "etcdserver: no leader");
        assert_eq!(j["read_ratio"], 0.5);
        assert!(s.check().is_ok());
        assert!(
            s.render(Format::Simple)
                .contains("range: first error: etcdserver: no leader")
        );
        assert_eq!(s.render(Format::Table).lines().count(), 6);
        let dead = Summary {
            series: vec![("range", s.series[1].1.clone())],
            ..s
        };
        assert!(
            dead.check()
                .unwrap_err()
                .to_string()
                .contains("every request failed (1)")
        );
    }
}
