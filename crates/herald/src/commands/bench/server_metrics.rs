//! The server's own timings, read from its `/metrics` at the end of a run: how long claims,
//! attempt records and SQLite writes took inside it, which the receiver cannot see.

use super::*;

/// The histograms a report shows: a publish's store call, store round trips as the dispatcher sees them, the HTTP
/// exchange, the SQLite writer's queue and answer times, and a SQLite claim's reads (the rest of
/// `herald_claim_seconds` there is the wait for what it read to be on disk).
const TIMINGS: &[&str] = &[
    "herald_publish_seconds",
    "herald_claim_seconds",
    "herald_sqlite_claim_read_seconds",
    "herald_attempt_record_seconds",
    "herald_attempt_duration_seconds",
    "herald_sqlite_write_queue_seconds",
    "herald_sqlite_write_seconds",
];

/// Each node's timings, by series (`name{labels}`): the count, the mean, and the median and p99
/// as the upper bound of the histogram bucket they fall in, in milliseconds. A node that cannot
/// be read is left out with a note; the run's other figures stand.
pub(super) async fn scrape(client: &reqwest::Client, bases: &[String]) -> Value {
    let mut nodes = Vec::new();
    for base in bases {
        let text = match client.get(format!("{base}/metrics")).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(error) => {
                eprintln!("could not read {base}/metrics: {error}");
                String::new()
            }
        };
        nodes.push(timings(&text));
    }
    Value::Array(nodes)
}

/// What one histogram series exposes.
#[derive(Default)]
struct Series {
    count: f64,
    sum: f64,
    /// Cumulative counts by upper bound, in the exposition's (ascending) order.
    buckets: Vec<(f64, f64)>,
}

impl Series {
    /// The upper bound of the bucket the `fraction` quantile falls in (infinite past the last).
    fn quantile_bound(&self, fraction: f64) -> f64 {
        let wanted = self.count * fraction;
        self.buckets
            .iter()
            .find(|(_, cumulative)| *cumulative >= wanted)
            .map_or(f64::INFINITY, |(bound, _)| *bound)
    }
}

/// Picks the [`TIMINGS`] histograms out of a Prometheus text exposition.
fn timings(exposition: &str) -> Value {
    let mut series: std::collections::BTreeMap<String, Series> = std::collections::BTreeMap::new();
    for line in exposition.lines().filter(|line| !line.starts_with('#')) {
        let Some((name_and_labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match name_and_labels.split_once('{') {
            Some((name, labels)) => (name, labels.trim_end_matches('}')),
            None => (name_and_labels, ""),
        };
        let Some((family, field)) = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| Some((name.strip_suffix(suffix)?, *suffix)))
        else {
            continue;
        };
        if !TIMINGS.contains(&family) {
            continue;
        }
        let mut bound = None;
        let kept: Vec<&str> = labels
            .split(',')
            .filter(|label| !label.is_empty())
            .filter(|label| match label.strip_prefix("le=") {
                Some(value) => {
                    bound = value.trim_matches('"').parse::<f64>().ok();
                    false
                }
                None => true,
            })
            .collect();
        let key = if kept.is_empty() {
            family.to_owned()
        } else {
            format!("{family}{{{}}}", kept.join(","))
        };
        let entry = series.entry(key).or_default();
        match (field, bound) {
            ("_count", _) => entry.count = value,
            ("_sum", _) => entry.sum = value,
            ("_bucket", Some(bound)) => entry.buckets.push((bound, value)),
            _ => {}
        }
    }
    let milliseconds = |seconds: f64| {
        if seconds.is_finite() {
            json!(seconds * 1000.0)
        } else {
            Value::Null
        }
    };
    let mut report = serde_json::Map::new();
    for (key, series) in series {
        let mean = if series.count > 0.0 {
            milliseconds(series.sum / series.count)
        } else {
            Value::Null
        };
        report.insert(
            key,
            json!({
                "count": series.count,
                "mean_ms": mean,
                "p50_ms": milliseconds(series.quantile_bound(0.5)),
                "p99_ms": milliseconds(series.quantile_bound(0.99)),
            }),
        );
    }
    Value::Object(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_become_milliseconds_per_series() {
        let exposition = "# TYPE herald_claim_seconds histogram\n\
            herald_claim_seconds_bucket{le=\"0.001\"} 10\n\
            herald_claim_seconds_bucket{le=\"0.005\"} 60\n\
            herald_claim_seconds_bucket{le=\"0.01\"} 99\n\
            herald_claim_seconds_bucket{le=\"+Inf\"} 100\n\
            herald_claim_seconds_sum 0.5\n\
            herald_claim_seconds_count 100\n\
            herald_sqlite_write_seconds_bucket{durability=\"committed\",le=\"0.001\"} 200\n\
            herald_sqlite_write_seconds_bucket{durability=\"committed\",le=\"+Inf\"} 200\n\
            herald_sqlite_write_seconds_sum{durability=\"committed\"} 0.1\n\
            herald_sqlite_write_seconds_count{durability=\"committed\"} 200\n\
            herald_deliveries_total{outcome=\"delivered\"} 100\n";
        let report = timings(exposition);
        let claim = &report["herald_claim_seconds"];
        assert_eq!(claim["count"], json!(100.0));
        assert!((claim["mean_ms"].as_f64().unwrap() - 5.0).abs() < 1e-9);
        assert!((claim["p50_ms"].as_f64().unwrap() - 5.0).abs() < 1e-9);
        assert!((claim["p99_ms"].as_f64().unwrap() - 10.0).abs() < 1e-9);
        let writes = &report["herald_sqlite_write_seconds{durability=\"committed\"}"];
        assert!((writes["mean_ms"].as_f64().unwrap() - 0.5).abs() < 1e-9);
        assert!((writes["p99_ms"].as_f64().unwrap() - 1.0).abs() < 1e-9);
        assert!(report.get("herald_deliveries_total").is_none());
    }
}
