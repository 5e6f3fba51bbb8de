//! Retry timing: an endpoint's retry schedule with jitter, and the `Retry-After` header.
//!
//! Jitter spreads the retries of many deliveries that failed together (an endpoint that was down
//! for a minute) so they do not all come back at the same instant and knock it over again.

use std::time::Duration;

use rand::Rng;
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

/// The most entries a retry schedule may have.
pub const MAX_RETRY_SCHEDULE_LEN: usize = 20;

/// The longest single wait a retry schedule may ask for.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The longest wait a `Retry-After` header can impose. A server that asks for more is treated as
/// asking for this, so one misconfigured header cannot park a delivery for months.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// Each scheduled delay is drawn uniformly from `delay ± delay × JITTER_PERCENT / 100`.
pub const JITTER_PERCENT: u64 = 20;

/// The default schedule, in seconds: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
const DEFAULT_RETRY_SCHEDULE_S: [u64; 7] = [5, 300, 1800, 7200, 18_000, 36_000, 36_000];

/// Why a retry schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryScheduleError {
    #[error("a retry schedule has at most {MAX_RETRY_SCHEDULE_LEN} entries, this one has {len}")]
    TooManyEntries { len: usize },
    #[error(
        "retry schedule entry {position} is {delay_s} s, more than the maximum of {max_s} s (7 days)",
        max_s = MAX_RETRY_DELAY.as_secs()
    )]
    DelayTooLong { position: usize, delay_s: u64 },
}

/// The waits between attempts of one delivery: entry `i` is the wait after the `i + 1`-th failed
/// attempt. An empty schedule means one attempt and no retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self {
            delays: DEFAULT_RETRY_SCHEDULE_S
                .iter()
                .map(|&delay_s| Duration::from_secs(delay_s))
                .collect(),
        }
    }
}

impl RetrySchedule {
    /// A schedule from whole seconds, as endpoints configure it (`retry_schedule_s`).
    ///
    /// Zero is allowed (retry at once); the schedule is finite, so it cannot loop.
    pub fn from_seconds(delays_s: &[u64]) -> Result<Self, RetryScheduleError> {
        if delays_s.len() > MAX_RETRY_SCHEDULE_LEN {
            return Err(RetryScheduleError::TooManyEntries {
                len: delays_s.len(),
            });
        }
        let mut delays = Vec::with_capacity(delays_s.len());
        for (delay_idx, &delay_s) in delays_s.iter().enumerate() {
            let delay = Duration::from_secs(delay_s);
            if delay > MAX_RETRY_DELAY {
                return Err(RetryScheduleError::DelayTooLong {
                    position: delay_idx + 1,
                    delay_s,
                });
            }
            delays.push(delay);
        }
        Ok(Self { delays })
    }

    /// The un-jittered delays.
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// The delays in whole seconds, the form they are configured and stored in.
    pub fn to_seconds(&self) -> Vec<u64> {
        self.delays.iter().map(Duration::as_secs).collect()
    }

    /// How many attempts a delivery gets in all: the first one plus one per entry.
    pub fn max_attempts(&self) -> u32 {
        // At most MAX_RETRY_SCHEDULE_LEN + 1, so the conversion cannot saturate in practice.
        u32::try_from(self.delays.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1)
    }

    /// The jittered wait before the next attempt, after `n_failed_attempts` attempts have failed;
    /// `None` when the schedule is used up (or when nothing has failed yet, `0`).
    pub fn next_retry_delay<R: Rng + ?Sized>(
        &self,
        n_failed_attempts: u32,
        rng: &mut R,
    ) -> Option<Duration> {
        let delay_idx = usize::try_from(n_failed_attempts.checked_sub(1)?).ok()?;
        let delay = self.delays.get(delay_idx)?;
        Some(with_jitter(*delay, rng))
    }
}

/// `delay` moved by a uniformly random amount of at most ±[`JITTER_PERCENT`] %, at millisecond
/// resolution.
pub fn with_jitter<R: Rng + ?Sized>(delay: Duration, rng: &mut R) -> Duration {
    // Integer milliseconds keep the bounds exact; delays of up to a few weeks fit in a u64 many
    // times over, and anything longer saturates rather than wraps.
    let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    let spread_ms = delay_ms / 100 * JITTER_PERCENT + delay_ms % 100 * JITTER_PERCENT / 100;
    let lowest_ms = delay_ms - spread_ms;
    let highest_ms = delay_ms.saturating_add(spread_ms);
    Duration::from_millis(rng.gen_range(lowest_ms..=highest_ms))
}

/// The IMF-fixdate form of an HTTP-date (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
const IMF_FIXDATE: &[BorrowedFormatItem<'static>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// Reads a `Retry-After` header value: delta-seconds (`120`) or an HTTP-date in the IMF-fixdate
/// form, which RFC 9110 requires senders to use. The obsolete RFC 850 and asctime forms are not
/// read; a header Herald cannot read is ignored like a missing one (`None`).
///
/// The wait is capped at [`MAX_RETRY_AFTER`]; a date in the past means "now" (zero).
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|byte| byte.is_ascii_digit()) {
        // All digits yet no u64: a number too large to represent, which the cap covers anyway.
        let delay_s = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(delay_s).min(MAX_RETRY_AFTER));
    }
    let date = time::PrimitiveDateTime::parse(value, IMF_FIXDATE)
        .ok()?
        .assume_utc();
    // Formatting back and comparing rejects what the parser alone lets through: a weekday that
    // does not match the date, or a year written with a sign.
    if date.format(IMF_FIXDATE).ok()? != value {
        return None;
    }
    let wait = date - now;
    if wait.is_negative() {
        return Some(Duration::ZERO);
    }
    Some(Duration::try_from(wait).ok()?.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(1994-11-06 08:49:37 UTC);

    #[test]
    fn schedules_are_validated() {
        fn check(delays_s: &[u64], expected: Result<Vec<u64>, RetryScheduleError>) {
            let got = RetrySchedule::from_seconds(delays_s).map(|schedule| schedule.to_seconds());
            assert_eq!(got, expected, "{delays_s:?}");
        }
        check(&[], Ok(vec![]));
        check(&[0, 1, 604_800], Ok(vec![0, 1, 604_800]));
        check(&[1; 20], Ok(vec![1; 20]));
        check(
            &[1; 21],
            Err(RetryScheduleError::TooManyEntries { len: 21 }),
        );
        check(
            &[5, 604_801],
            Err(RetryScheduleError::DelayTooLong {
                position: 2,
                delay_s: 604_801,
            }),
        );
    }

    #[test]
    fn default_schedule_is_the_documented_one() {
        let schedule = RetrySchedule::default();
        assert_eq!(
            schedule.to_seconds(),
            [5, 300, 1800, 7200, 18_000, 36_000, 36_000]
        );
        assert_eq!(schedule.max_attempts(), 8);
        assert_eq!(RetrySchedule::from_seconds(&[]).unwrap().max_attempts(), 1);
    }

    #[test]
    fn next_retry_delay_walks_the_schedule_with_jitter() {
        fn check(delays_s: &[u64], n_failed_attempts: u32, expected_ms: Option<(u64, u64)>) {
            let schedule = RetrySchedule::from_seconds(delays_s).unwrap();
            let mut rng = StdRng::seed_from_u64(u64::from(n_failed_attempts));
            for _ in 0..200 {
                let got = schedule.next_retry_delay(n_failed_attempts, &mut rng);
                let in_window = match (got, expected_ms) {
                    (None, None) => true,
                    (Some(delay), Some((lowest_ms, highest_ms))) => {
                        (lowest_ms..=highest_ms).contains(&(delay.as_millis() as u64))
                    }
                    _ => false,
                };
                assert!(
                    in_window,
                    "{delays_s:?} after {n_failed_attempts}: {got:?}, expected {expected_ms:?}"
                );
            }
        }
        let default_s = RetrySchedule::default().to_seconds();
        check(&default_s, 0, None);
        check(&default_s, 1, Some((4_000, 6_000)));
        check(&default_s, 2, Some((240_000, 360_000)));
        check(&default_s, 7, Some((28_800_000, 43_200_000)));
        check(&default_s, 8, None);
        check(&default_s, u32::MAX, None);
        check(&[], 1, None);
        check(&[0], 1, Some((0, 0)));
    }

    #[test]
    fn jitter_reaches_both_ends_of_its_window() {
        let mut rng = StdRng::seed_from_u64(42);
        let draws: Vec<u64> = (0..2_000)
            .map(|_| with_jitter(Duration::from_millis(10), &mut rng).as_millis() as u64)
            .collect();
        assert_eq!(draws.iter().min(), Some(&8));
        assert_eq!(draws.iter().max(), Some(&12));
    }

    #[test]
    fn retry_after_values_are_read_and_capped() {
        fn check(value: &str, expected: Option<Duration>) {
            assert_eq!(parse_retry_after(value, NOW), expected, "{value:?}");
        }
        let seconds = Duration::from_secs;
        check("120", Some(seconds(120)));
        check(" 0 ", Some(seconds(0)));
        check("86400", Some(seconds(86_400)));
        check("86401", Some(MAX_RETRY_AFTER));
        check("99999999999999999999999", Some(MAX_RETRY_AFTER));
        check("Sun, 06 Nov 1994 08:51:37 GMT", Some(seconds(120)));
        check("Sun, 06 Nov 1994 08:49:37 GMT", Some(seconds(0)));
        check("Sat, 05 Nov 1994 08:49:37 GMT", Some(seconds(0)));
        check("Tue, 08 Nov 1994 08:49:37 GMT", Some(MAX_RETRY_AFTER));
        // Refused: empty, signed or fractional numbers, wrong weekday, wrong case, other zones,
        // the obsolete RFC 850 and asctime forms.
        check("", None);
        check("-5", None);
        check("+5", None);
        check("1.5", None);
        check("Mon, 06 Nov 1994 08:51:37 GMT", None);
        check("sun, 06 Nov 1994 08:51:37 GMT", None);
        check("Sun, 06 Nov 1994 08:51:37 UTC", None);
        check("Sun, 6 Nov 1994 08:51:37 GMT", None);
        check("Sunday, 06-Nov-94 08:49:37 GMT", None);
        check("Sun Nov  6 08:49:37 1994", None);
    }

    proptest! {
        #[test]
        fn parse_retry_after_never_panics_and_respects_the_cap(value in ".{0,40}") {
            if let Some(delay) = parse_retry_after(&value, NOW) {
                prop_assert!(delay <= MAX_RETRY_AFTER);
            }
        }

        #[test]
        fn delta_seconds_round_trip(delay_s in 0_u64..=86_400) {
            prop_assert_eq!(parse_retry_after(&delay_s.to_string(), NOW), Some(Duration::from_secs(delay_s)));
        }

        #[test]
        fn http_dates_round_trip(wait_s in 0_i64..=86_400) {
            let date = NOW + time::Duration::seconds(wait_s);
            let value = date.format(IMF_FIXDATE).unwrap();
            prop_assert_eq!(parse_retry_after(&value, NOW), Some(Duration::from_secs(wait_s.unsigned_abs())));
        }

        #[test]
        fn jitter_stays_within_twenty_percent(delay_ms in 0_u64..=MAX_RETRY_DELAY.as_millis() as u64, seed in any::<u64>()) {
            let mut rng = StdRng::seed_from_u64(seed);
            let jittered_ms = with_jitter(Duration::from_millis(delay_ms), &mut rng).as_millis();
            let delay_ms = u128::from(delay_ms);
            prop_assert!(jittered_ms * 100 >= delay_ms * 80, "{} from {}", jittered_ms, delay_ms);
            prop_assert!(jittered_ms * 100 <= delay_ms * 120, "{} from {}", jittered_ms, delay_ms);
        }
    }
}
