//! The delivery state machine and the decision taken after each attempt.
//!
//! Everything here is a pure function of its inputs (the attempt's outcome, the attempt count,
//! the schedule, a random source for jitter), so the worker that calls it stays small and every
//! rule can be tested in a table.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;
use time::OffsetDateTime;

use crate::retry::{MAX_RETRY_AFTER, RetrySchedule};

mod conclude;

pub use conclude::{
    AttemptFacts, Conclusion, DisableReason, Exchange, NextStep, UnknownDisableReason, conclude,
};

/// How long an endpoint may fail without a single success before it is disabled, by default.
pub const DEFAULT_AUTO_DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * 60 * 60);

/// The shortest wait Herald honours from a `Retry-After` header. `Retry-After: 0` (or a date in
/// the past) would otherwise have a struggling server hammered in a tight loop by the very
/// client it asked to back off.
pub const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Where one delivery (one event for one endpoint) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Waiting for its first attempt (or re-queued by a person).
    Pending,
    /// Claimed by a worker under a lease; an attempt is under way.
    InFlight,
    /// An attempt got a 2xx answer.
    Delivered,
    /// An attempt failed; the next one is due at a set time.
    Scheduled,
    /// Every attempt failed, or the endpoint answered `410 Gone`.
    Exhausted,
    /// Given up on by a person, or its endpoint was deleted.
    Cancelled,
}

/// The text of a delivery state that is not one of [`DeliveryState::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown delivery state `{0}`: expected pending, in_flight, delivered, scheduled, exhausted or cancelled"
)]
pub struct UnknownDeliveryState(pub String);

impl DeliveryState {
    /// Every state, in lifecycle order.
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::InFlight,
        Self::Delivered,
        Self::Scheduled,
        Self::Exhausted,
        Self::Cancelled,
    ];

    /// The snake_case name used in the API, the CLI and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InFlight => "in_flight",
            Self::Delivered => "delivered",
            Self::Scheduled => "scheduled",
            Self::Exhausted => "exhausted",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether no worker will touch the delivery again unless a person retries or replays it.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Delivered | Self::Exhausted | Self::Cancelled)
    }

    /// Whether a delivery may move from `self` to `next`:
    ///
    /// - `pending` and `scheduled` are claimed (`in_flight`) or cancelled;
    /// - `in_flight` ends as `delivered`, `scheduled` or `exhausted`, is cancelled (its endpoint
    ///   was deleted mid-attempt), or returns to `pending` when its lease runs out because the
    ///   worker died;
    /// - a person may re-queue any delivery that is not under way (`pending` again): a retry of
    ///   an exhausted or cancelled one, a replay of a delivered one, "retry now" of a scheduled one.
    pub fn can_transition_to(self, next: Self) -> bool {
        use DeliveryState::{Cancelled, Delivered, Exhausted, InFlight, Pending, Scheduled};
        matches!(
            (self, next),
            (Pending | Scheduled, InFlight | Cancelled)
                | (
                    InFlight,
                    Delivered | Scheduled | Exhausted | Cancelled | Pending
                )
                | (Scheduled | Delivered | Exhausted | Cancelled, Pending)
        )
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for DeliveryState {
    type Err = UnknownDeliveryState;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| UnknownDeliveryState(text.to_owned()))
    }
}

/// What came of one HTTP attempt, as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// The endpoint answered. `retry_after` is its parsed `Retry-After` header, if any (see
    /// [`crate::retry::parse_retry_after`]).
    Response {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No answer within the request timeout.
    TimedOut,
    /// No answer at all: DNS, connection, TLS, a refused address, a reset.
    TransportFailed,
}

/// What to do with a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// 2xx: done.
    Delivered,
    /// Failed; try again after this wait (state `scheduled`).
    RetryAfter(Duration),
    /// Failed and the schedule is used up (state `exhausted`).
    Exhausted,
    /// `410 Gone`: the receiver says the endpoint no longer exists. The delivery is exhausted at
    /// once and the endpoint must be disabled.
    EndpointGone,
}

impl Decision {
    /// The state the delivery moves to.
    pub fn next_state(self) -> DeliveryState {
        match self {
            Self::Delivered => DeliveryState::Delivered,
            Self::RetryAfter(_) => DeliveryState::Scheduled,
            Self::Exhausted | Self::EndpointGone => DeliveryState::Exhausted,
        }
    }
}

/// Decides what follows an attempt, given how many attempts (this one included) have been made.
///
/// - 2xx is success.
/// - 410 disables the endpoint, whatever the schedule says.
/// - Every other answer is a failure retried by the schedule, as Svix does: 5xx, 429 and 408
///   obviously; 3xx too, because redirects are not followed and a receiver that moved should be
///   reconfigured, not silently chased; other 4xx too, because they are as often a receiver's
///   passing misconfiguration (a wrong route during a deploy, an expired allowlist) as a
///   permanent refusal, and exhausting on the first one would drop events. Timeouts and
///   transport errors are failures as well.
/// - For 429 and 503, a `Retry-After` the server sent replaces the scheduled wait, without jitter
///   (the server named the time), capped at [`MAX_RETRY_AFTER`] and never shorter than
///   [`MIN_RETRY_AFTER`]. It does not add attempts: when the schedule is used up the delivery is
///   exhausted, so a server cannot keep one alive forever.
pub fn decide_after_attempt<R: Rng + ?Sized>(
    result: &AttemptResult,
    n_attempts: u32,
    schedule: &RetrySchedule,
    rng: &mut R,
) -> Decision {
    let retry_after = match *result {
        AttemptResult::Response { status, .. } if (200..=299).contains(&status) => {
            return Decision::Delivered;
        }
        AttemptResult::Response { status: 410, .. } => return Decision::EndpointGone,
        AttemptResult::Response {
            status: 429 | 503,
            retry_after,
        } => retry_after,
        AttemptResult::Response { .. }
        | AttemptResult::TimedOut
        | AttemptResult::TransportFailed => None,
    };
    // Every attempt so far failed (a success would have ended the delivery), so the count of
    // attempts is the count of failures.
    let Some(scheduled_delay) = schedule.next_retry_delay(n_attempts, rng) else {
        return Decision::Exhausted;
    };
    match retry_after {
        Some(asked) => Decision::RetryAfter(asked.clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER)),
        None => Decision::RetryAfter(scheduled_delay),
    }
}

/// Whether an endpoint that has failed without a success since `first_failure_at` should now be
/// disabled (`threshold` is usually [`DEFAULT_AUTO_DISABLE_AFTER`]).
pub fn should_auto_disable(
    first_failure_at: OffsetDateTime,
    now: OffsetDateTime,
    threshold: Duration,
) -> bool {
    now - first_failure_at >= threshold
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use time::macros::datetime;

    #[test]
    fn state_names_round_trip() {
        fn check(text: &str, expected: Result<DeliveryState, UnknownDeliveryState>) {
            let parsed = text.parse::<DeliveryState>();
            assert_eq!(parsed, expected, "{text:?}");
            if let Ok(state) = parsed {
                assert_eq!(state.as_str(), text);
                assert_eq!(state.to_string(), text);
            }
        }
        check("pending", Ok(DeliveryState::Pending));
        check("in_flight", Ok(DeliveryState::InFlight));
        check("delivered", Ok(DeliveryState::Delivered));
        check("scheduled", Ok(DeliveryState::Scheduled));
        check("exhausted", Ok(DeliveryState::Exhausted));
        check("cancelled", Ok(DeliveryState::Cancelled));
        check("Pending", Err(UnknownDeliveryState("Pending".to_owned())));
        check(
            "in-flight",
            Err(UnknownDeliveryState("in-flight".to_owned())),
        );
        check("", Err(UnknownDeliveryState(String::new())));
    }

    #[test]
    fn transitions_follow_the_lifecycle() {
        use DeliveryState::{Cancelled, Delivered, Exhausted, InFlight, Pending, Scheduled};
        // Each state with every state it may move to; every other pair is refused.
        let allowed: [(DeliveryState, &[DeliveryState]); 6] = [
            (Pending, &[InFlight, Cancelled]),
            (
                InFlight,
                &[Delivered, Scheduled, Exhausted, Cancelled, Pending],
            ),
            (Delivered, &[Pending]),
            (Scheduled, &[InFlight, Cancelled, Pending]),
            (Exhausted, &[Pending]),
            (Cancelled, &[Pending]),
        ];
        for (from, allowed_next) in allowed {
            for next in DeliveryState::ALL {
                assert_eq!(
                    from.can_transition_to(next),
                    allowed_next.contains(&next),
                    "{from} -> {next}"
                );
            }
        }
        let final_states: Vec<_> = DeliveryState::ALL
            .into_iter()
            .filter(|state| state.is_final())
            .collect();
        assert_eq!(final_states, [Delivered, Exhausted, Cancelled]);
    }

    /// The expected decision, with the jitter window for scheduled retries.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Expected {
        Delivered,
        RetryBetween { lowest_ms: u64, highest_ms: u64 },
        RetryExactly(Duration),
        Exhausted,
        EndpointGone,
    }

    fn check(result: AttemptResult, n_attempts: u32, expected: Expected) {
        let schedule = RetrySchedule::from_seconds(&[10, 100]).unwrap();
        let mut rng = StdRng::seed_from_u64(u64::from(n_attempts));
        let decision = decide_after_attempt(&result, n_attempts, &schedule, &mut rng);
        let matches = match (decision, expected) {
            (Decision::Delivered, Expected::Delivered)
            | (Decision::Exhausted, Expected::Exhausted)
            | (Decision::EndpointGone, Expected::EndpointGone) => true,
            (Decision::RetryAfter(delay), Expected::RetryExactly(expected_delay)) => {
                delay == expected_delay
            }
            (
                Decision::RetryAfter(delay),
                Expected::RetryBetween {
                    lowest_ms,
                    highest_ms,
                },
            ) => (lowest_ms..=highest_ms).contains(&(delay.as_millis() as u64)),
            _ => false,
        };
        assert!(
            matches,
            "{result:?} after {n_attempts} attempts: got {decision:?}, expected {expected:?}"
        );
    }

    fn status(status: u16) -> AttemptResult {
        AttemptResult::Response {
            status,
            retry_after: None,
        }
    }

    fn status_with_retry_after(status: u16, retry_after_s: u64) -> AttemptResult {
        AttemptResult::Response {
            status,
            retry_after: Some(Duration::from_secs(retry_after_s)),
        }
    }

    #[test]
    fn decisions_after_an_attempt() {
        let first_retry = Expected::RetryBetween {
            lowest_ms: 8_000,
            highest_ms: 12_000,
        };
        let second_retry = Expected::RetryBetween {
            lowest_ms: 80_000,
            highest_ms: 120_000,
        };
        let seconds = Duration::from_secs;

        check(status(200), 1, Expected::Delivered);
        check(status(204), 3, Expected::Delivered);
        check(status(299), 9, Expected::Delivered);
        check(status(410), 1, Expected::EndpointGone);
        check(status(410), 3, Expected::EndpointGone);

        for failing_status in [
            100, 301, 302, 400, 401, 404, 408, 429, 500, 502, 503, 599, 600,
        ] {
            check(status(failing_status), 1, first_retry);
            check(status(failing_status), 2, second_retry);
            check(status(failing_status), 3, Expected::Exhausted);
        }
        check(AttemptResult::TimedOut, 1, first_retry);
        check(AttemptResult::TransportFailed, 2, second_retry);
        check(AttemptResult::TransportFailed, 3, Expected::Exhausted);

        // Retry-After counts for 429 and 503 only, within [1 s, 24 h], and adds no attempts.
        check(
            status_with_retry_after(429, 30),
            1,
            Expected::RetryExactly(seconds(30)),
        );
        check(
            status_with_retry_after(503, 3_600),
            2,
            Expected::RetryExactly(seconds(3_600)),
        );
        check(
            status_with_retry_after(503, 0),
            1,
            Expected::RetryExactly(MIN_RETRY_AFTER),
        );
        check(
            status_with_retry_after(429, 999_999),
            1,
            Expected::RetryExactly(MAX_RETRY_AFTER),
        );
        check(status_with_retry_after(429, 30), 3, Expected::Exhausted);
        check(status_with_retry_after(500, 30), 1, first_retry);
        check(status_with_retry_after(301, 30), 1, first_retry);
        check(status_with_retry_after(200, 30), 1, Expected::Delivered);
    }

    #[test]
    fn decisions_map_to_states() {
        let cases = [
            (Decision::Delivered, DeliveryState::Delivered),
            (
                Decision::RetryAfter(Duration::ZERO),
                DeliveryState::Scheduled,
            ),
            (Decision::Exhausted, DeliveryState::Exhausted),
            (Decision::EndpointGone, DeliveryState::Exhausted),
        ];
        for (decision, expected) in cases {
            assert_eq!(decision.next_state(), expected, "{decision:?}");
            assert!(DeliveryState::InFlight.can_transition_to(expected));
        }
    }

    #[test]
    fn endpoints_are_disabled_after_the_threshold() {
        fn check(first_failure_at: OffsetDateTime, now: OffsetDateTime, expected: bool) {
            assert_eq!(
                should_auto_disable(first_failure_at, now, DEFAULT_AUTO_DISABLE_AFTER),
                expected,
                "{first_failure_at} .. {now}"
            );
        }
        let first_failure_at = datetime!(2025-01-01 00:00:00 UTC);
        check(first_failure_at, first_failure_at, false);
        check(first_failure_at, datetime!(2025-01-05 23:59:59 UTC), false);
        check(first_failure_at, datetime!(2025-01-06 00:00:00 UTC), true);
        check(first_failure_at, datetime!(2025-02-01 00:00:00 UTC), true);
        // A clock that went backwards never disables anything.
        check(first_failure_at, datetime!(2024-12-01 00:00:00 UTC), false);
    }

    proptest! {
        #[test]
        fn decisions_are_total_and_bounded(
            status in 0_u16..1000,
            retry_after_s in proptest::option::of(any::<u64>()),
            n_attempts in any::<u32>(),
            seed in any::<u64>(),
        ) {
            let result = AttemptResult::Response { status, retry_after: retry_after_s.map(Duration::from_secs) };
            let mut rng = StdRng::seed_from_u64(seed);
            let decision = decide_after_attempt(&result, n_attempts, &RetrySchedule::default(), &mut rng);
            if let Decision::RetryAfter(delay) = decision {
                prop_assert!(delay <= MAX_RETRY_AFTER.max(Duration::from_secs(36_000 * 6 / 5)));
                prop_assert!((1..=7).contains(&n_attempts));
            }
        }
    }
}
