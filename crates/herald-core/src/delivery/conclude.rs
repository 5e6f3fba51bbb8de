//! The end of one delivery attempt: from what the endpoint answered (or did not), what happens to
//! the delivery and to its endpoint, and what the attempt's row says.
//!
//! The dispatcher sends and records; everything it decides in between is here, as one pure
//! function of the answer, the attempt count, the schedule, the clock readings and a random
//! source, so each rule is a row in a table test.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;
use time::OffsetDateTime;

use super::{AttemptResult, Decision, decide_after_attempt, should_auto_disable};
use crate::retry::{RetrySchedule, parse_retry_after};

/// Why Herald disabled an endpoint by itself. A person disabling one gives no reason, so there is
/// no variant for that: the reason is then absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisableReason {
    /// The receiver answered `410 Gone`.
    Gone,
    /// Every attempt failed for longer than the auto-disable threshold.
    FailingTooLong,
}

/// The text of a disable reason that is not one of [`DisableReason::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown disable reason `{0}`: expected gone or failing_too_long")]
pub struct UnknownDisableReason(pub String);

impl DisableReason {
    pub const ALL: [Self; 2] = [Self::Gone, Self::FailingTooLong];

    /// The name shown in the API and the operational events, and stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gone => "gone",
            Self::FailingTooLong => "failing_too_long",
        }
    }
}

impl fmt::Display for DisableReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for DisableReason {
    type Err = UnknownDisableReason;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|reason| reason.as_str() == text)
            .ok_or_else(|| UnknownDisableReason(text.to_owned()))
    }
}

/// Where a delivery goes after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    Delivered,
    RetryAt(OffsetDateTime),
    Exhausted,
}

impl NextStep {
    /// The outcome's name in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            NextStep::Delivered => "delivered",
            NextStep::RetryAt(_) => "retry",
            NextStep::Exhausted => "exhausted",
        }
    }
}

/// What one attempt's request came to, as the transport reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange<'a> {
    /// The endpoint answered, with its `Retry-After` header if it sent one.
    Responded {
        status: u16,
        retry_after: Option<&'a str>,
    },
    /// No answer within the request timeout.
    TimedOut,
    /// No answer at all (or no request: it could not be signed), and why.
    Failed { error: &'a str },
}

/// Everything [`conclude`] needs besides the random source.
#[derive(Debug, Clone, Copy)]
pub struct AttemptFacts<'a> {
    pub exchange: Exchange<'a>,
    /// Attempts made so far, this one included.
    pub n_attempts: u32,
    pub schedule: &'a RetrySchedule,
    /// When the endpoint's current run of failures began (`None`: it has not been failing).
    pub failing_since: Option<OffsetDateTime>,
    /// An endpoint that has only failed for this long is disabled.
    pub auto_disable_after: Duration,
    pub started_at: OffsetDateTime,
    pub finished_at: OffsetDateTime,
}

/// What follows one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conclusion {
    pub next: NextStep,
    /// Set when the endpoint is to be disabled.
    pub disable: Option<DisableReason>,
    /// The attempt row's status: the answer's, if there was one.
    pub status: Option<u16>,
    /// The attempt row's error: `HTTP 500`, `timed out`, the transport's words; `None` on 2xx.
    pub error: Option<String>,
}

/// Decides the delivery's next step, whether its endpoint is disabled, and the attempt's status
/// and error text. The retry rules are [`decide_after_attempt`]'s; on top of them an endpoint
/// is disabled when it answered `410 Gone`, or when this attempt failed and the endpoint has
/// been failing for `auto_disable_after` (counted from this attempt's start when this is the
/// first failure).
pub fn conclude<R: Rng + ?Sized>(facts: &AttemptFacts<'_>, rng: &mut R) -> Conclusion {
    let (result, status, error) = match facts.exchange {
        Exchange::Responded {
            status,
            retry_after,
        } => (
            AttemptResult::Response {
                status,
                retry_after: retry_after
                    .and_then(|value| parse_retry_after(value, facts.finished_at)),
            },
            Some(status),
            (!(200..300).contains(&status)).then(|| format!("HTTP {status}")),
        ),
        Exchange::TimedOut => (AttemptResult::TimedOut, None, Some("timed out".to_owned())),
        Exchange::Failed { error } => {
            (AttemptResult::TransportFailed, None, Some(error.to_owned()))
        }
    };
    let mut disable = None;
    let next = match decide_after_attempt(&result, facts.n_attempts, facts.schedule, rng) {
        Decision::Delivered => NextStep::Delivered,
        Decision::RetryAfter(delay) => NextStep::RetryAt(facts.finished_at + delay),
        Decision::Exhausted => NextStep::Exhausted,
        Decision::EndpointGone => {
            disable = Some(DisableReason::Gone);
            NextStep::Exhausted
        }
    };
    let failing_since = facts.failing_since.unwrap_or(facts.started_at);
    if next != NextStep::Delivered
        && disable.is_none()
        && should_auto_disable(failing_since, facts.finished_at, facts.auto_disable_after)
    {
        disable = Some(DisableReason::FailingTooLong);
    }
    Conclusion {
        next,
        disable,
        status,
        error,
    }
}

#[cfg(test)]
mod tests;
