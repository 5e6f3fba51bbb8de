//! The overview's charts: events per minute over the last hour, counted from the event log, and
//! delivery attempts per minute with their failure rate, counted by the store; drawn as SVG bar
//! charts on the server (no script, no chart library).

use herald_store::Store;
use herald_store::models::{AttemptMinute, EventFilter};
use time::{Duration, OffsetDateTime};

use crate::console::html::escape;
use crate::error::ApiResult;

/// Minutes the chart covers.
pub const MINUTES: usize = 60;

/// At most this many events are counted: past it the chart says it is capped.
const MAX_COUNTED: usize = 10_000;

/// The first event after `after_seq`, if any.
async fn first_after(
    store: &dyn Store,
    tenant_id: &str,
    after_seq: i64,
) -> ApiResult<Option<OffsetDateTime>> {
    let filter = EventFilter {
        after_seq,
        limit: 1,
        event_type: None,
        subject: None,
    };
    let events = store.list_events(tenant_id, &filter).await?;
    Ok(events.first().map(|stored| stored.received_at))
}

/// The `seq` after which every event of the tenant was received at or after `since` (0 when all
/// were). The log is read forward only, so it is found by bisection on `seq` (events are received
/// in `seq` order): a few dozen one-row reads however long the log is.
pub async fn seq_before(
    store: &dyn Store,
    tenant_id: &str,
    since: OffsetDateTime,
) -> ApiResult<i64> {
    // `upper` always satisfies: every event after it was received at or after `since`.
    let mut upper: i64 = 1;
    while let Some(received_at) = first_after(store, tenant_id, upper).await? {
        if received_at >= since {
            break;
        }
        upper = upper.saturating_mul(2);
    }
    let mut lower: i64 = 0;
    if first_after(store, tenant_id, 0)
        .await?
        .is_none_or(|received_at| received_at >= since)
    {
        upper = 0;
    }
    while lower < upper {
        let middle = lower + (upper - lower) / 2;
        match first_after(store, tenant_id, middle).await? {
            Some(received_at) if received_at < since => lower = middle + 1,
            _ => upper = middle,
        }
    }
    Ok(upper)
}

/// The receive times of the tenant's events since `since`, oldest first, and whether the count
/// was capped.
pub async fn received_since(
    store: &dyn Store,
    tenant_id: &str,
    since: OffsetDateTime,
) -> ApiResult<(Vec<OffsetDateTime>, bool)> {
    let upper = seq_before(store, tenant_id, since).await?;
    let filter = EventFilter {
        after_seq: upper,
        limit: MAX_COUNTED,
        event_type: None,
        subject: None,
    };
    let events = store.list_events(tenant_id, &filter).await?;
    let is_capped = events.len() == MAX_COUNTED;
    Ok((
        events
            .into_iter()
            .map(|stored| stored.received_at)
            .collect(),
        is_capped,
    ))
}

/// Counts per minute, oldest minute first, for the `MINUTES` minutes ending at `now`.
pub fn per_minute(times: &[OffsetDateTime], now: OffsetDateTime) -> Vec<u64> {
    let mut counts = vec![0; MINUTES];
    for time in times {
        let age = now - *time;
        if age < Duration::ZERO {
            continue;
        }
        let minutes_ago = usize::try_from(age.whole_minutes()).unwrap_or(usize::MAX);
        if minutes_ago < MINUTES {
            counts[MINUTES - 1 - minutes_ago] += 1;
        }
    }
    counts
}

/// Attempts and failed attempts per minute, oldest minute first, for the `MINUTES` minutes
/// ending at `now` (the store's minutes are whole UTC minutes; the chart's end at `now`).
pub fn attempts_per_minute(minutes: &[AttemptMinute], now: OffsetDateTime) -> (Vec<u64>, Vec<u64>) {
    let mut attempts = vec![0; MINUTES];
    let mut failed = vec![0; MINUTES];
    for minute in minutes {
        let age = now - minute.minute;
        if age < Duration::ZERO {
            continue;
        }
        let minutes_ago = usize::try_from(age.whole_minutes()).unwrap_or(usize::MAX);
        if minutes_ago < MINUTES {
            attempts[MINUTES - 1 - minutes_ago] += minute.n_attempts;
            failed[MINUTES - 1 - minutes_ago] += minute.n_failed;
        }
    }
    (attempts, failed)
}

/// The share of failed attempts in each minute, as an SVG bar chart on a 0-100 % scale (a
/// minute without attempts has no bar), with a text alternative.
pub fn failure_rate_chart(attempts: &[u64], failed: &[u64]) -> String {
    let (width, height) = (600.0, 120.0);
    let bar_width = width / attempts.len().max(1) as f64;
    let mut bars = String::new();
    let mut worst: u64 = 0;
    for (index, (n_attempts, n_failed)) in attempts.iter().zip(failed).enumerate() {
        if *n_attempts == 0 {
            continue;
        }
        let percent = n_failed * 100 / n_attempts;
        worst = worst.max(percent);
        let bar_height = (percent as f64 / 100.0) * (height - 10.0);
        let minutes_ago = attempts.len() - 1 - index;
        bars.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{bar_height:.1}\" class=\"bar bad\">\
             <title>{percent}% of {n_attempts} failed · {minutes_ago} min ago</title></rect>",
            x = index as f64 * bar_width + 1.0,
            y = height - bar_height,
            w = (bar_width - 2.0).max(1.0),
        ));
    }
    let total: u64 = attempts.iter().sum();
    let total_failed: u64 = failed.iter().sum();
    let summary = match (total_failed * 100).checked_div(total) {
        None => "Failure rate: no attempts in the last hour".to_owned(),
        Some(percent) => format!(
            "Failure rate: {percent}% of {total} attempts failed in the last hour (worst minute {worst}%)"
        ),
    };
    format!(
        "<figure class=\"chart\"><svg viewBox=\"0 0 {width} {height}\" role=\"img\" \
         aria-label=\"{alt}\"><line x1=\"0\" y1=\"{height}\" x2=\"{width}\" y2=\"{height}\" class=\"axis\"/>{bars}</svg>\
         <figcaption>{caption} (the right edge is now)</figcaption></figure>",
        alt = escape(&summary),
        caption = escape(&summary),
    )
}

/// An SVG bar chart of `counts` (one bar a minute), with a text alternative.
pub fn bar_chart(label: &str, counts: &[u64]) -> String {
    let (width, height) = (600.0, 120.0);
    let peak = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let bar_width = width / counts.len().max(1) as f64;
    let total: u64 = counts.iter().sum();
    let mut bars = String::new();
    for (index, count) in counts.iter().enumerate() {
        let bar_height = (*count as f64 / peak) * (height - 10.0);
        let minutes_ago = counts.len() - 1 - index;
        bars.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{bar_height:.1}\" class=\"bar\">\
             <title>{count} · {minutes_ago} min ago</title></rect>",
            x = index as f64 * bar_width + 1.0,
            y = height - bar_height,
            w = (bar_width - 2.0).max(1.0),
        ));
    }
    format!(
        "<figure class=\"chart\"><svg viewBox=\"0 0 {width} {height}\" role=\"img\" \
         aria-label=\"{alt}\"><line x1=\"0\" y1=\"{height}\" x2=\"{width}\" y2=\"{height}\" class=\"axis\"/>{bars}</svg>\
         <figcaption>{caption}</figcaption></figure>",
        alt = escape(&format!(
            "{label}: {total} in the last hour, at most {peak} in a minute"
        )),
        caption = escape(&format!(
            "{label}: {total} in the last hour (peak {peak} a minute; the right edge is now)"
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::{MINUTES, attempts_per_minute, bar_chart, failure_rate_chart, per_minute};
    use herald_store::models::AttemptMinute;
    use time::{Duration, OffsetDateTime};

    #[test]
    fn events_fall_into_the_minute_they_were_received_and_old_ones_drop_out() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
        let times = [
            now,
            now - Duration::seconds(30),
            now - Duration::minutes(1),
            now - Duration::minutes(59),
            now - Duration::minutes(60),
            now + Duration::seconds(5),
        ];
        let counts = per_minute(&times, now);
        assert_eq!(counts.len(), MINUTES);
        assert_eq!(counts[MINUTES - 1], 2);
        assert_eq!(counts[MINUTES - 2], 1);
        assert_eq!(counts[0], 1);
        assert_eq!(counts.iter().sum::<u64>(), 4);
    }

    #[test]
    fn the_chart_has_a_bar_a_minute_and_says_its_total() {
        let chart = bar_chart("Events <per> minute", &[0, 3, 1]);
        assert_eq!(chart.matches("<rect").count(), 3);
        assert!(chart.contains("4 in the last hour"));
        assert!(chart.contains("Events &lt;per&gt; minute"));
    }

    #[test]
    fn attempts_fall_into_their_minute_and_the_rate_is_of_each_minute() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_030).expect("time");
        let minute = |minutes_ago: i64, n_attempts: u64, n_failed: u64| AttemptMinute {
            minute: OffsetDateTime::from_unix_timestamp(1_800_000_000 - 60 * minutes_ago)
                .expect("time"),
            n_attempts,
            n_failed,
        };
        let (attempts, failed) =
            attempts_per_minute(&[minute(60, 9, 9), minute(2, 4, 1), minute(0, 2, 2)], now);
        assert_eq!(attempts[MINUTES - 1], 2);
        assert_eq!(attempts[MINUTES - 3], 4);
        assert_eq!(attempts.iter().sum::<u64>(), 6, "an hour ago is out");
        assert_eq!(failed.iter().sum::<u64>(), 3);
        let chart = failure_rate_chart(&attempts, &failed);
        assert_eq!(chart.matches("<rect").count(), 2, "no bar without attempts");
        assert!(
            chart.contains("50% of 6 attempts failed in the last hour (worst minute 100%)"),
            "{chart}"
        );
        assert!(failure_rate_chart(&[0, 0], &[0, 0]).contains("no attempts in the last hour"));
    }
}
