//! Histograms and the two outputs of every scenario: JSON (stdout and `--json`) and a
//! markdown row for the tables of bench/README.md.

use std::path::Path;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Latencies in microseconds, 1 µs .. 10 min, 3 significant figures.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

/// Records a latency, clamped into the histogram's range.
pub fn record(h: &mut Histogram<u64>, micros: u64) {
    h.saturating_record(micros.max(1));
}

/// The `q` quantile in milliseconds.
pub fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// `p50 / p99` in ms, for markdown cells.
pub fn p50_p99(h: &Histogram<u64>) -> String {
    format!("{:.2} / {:.2}", ms(h, 0.5), ms(h, 0.99))
}

pub fn percentiles(h: &Histogram<u64>) -> Value {
    json!({
        "count": h.len(), "p50_ms": ms(h, 0.5), "p90_ms": ms(h, 0.9), "p99_ms": ms(h, 0.99),
        "p999_ms": ms(h, 0.999), "max_ms": h.max() as f64 / 1000.0,
    })
}

/// Prints the JSON result and the markdown table (header then rows), and writes the JSON
/// to `path` if given.
pub fn emit(path: Option<&Path>, result: &Value, header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let pretty = serde_json::to_string_pretty(result)?;
    println!("{pretty}");
    if let Some(path) = path {
        std::fs::write(path, &pretty)?;
    }
    println!("\n| {} |", header.join(" | "));
    println!("|{}", "---|".repeat(header.len()));
    for row in rows {
        println!("| {} |", row.join(" | "));
    }
    Ok(())
}
