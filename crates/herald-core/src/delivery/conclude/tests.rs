//! Table tests of [`conclude`]: one row per rule.

use rand::SeedableRng;
use rand::rngs::StdRng;
use time::macros::datetime;

use super::*;

const STARTED_AT: OffsetDateTime = datetime!(2025-01-10 12:00:00 UTC);
const FINISHED_AT: OffsetDateTime = datetime!(2025-01-10 12:00:01 UTC);
const THRESHOLD: Duration = Duration::from_secs(5 * 24 * 3600);

/// The next step expected, with the jitter window of a scheduled retry in whole seconds after
/// the attempt finished.
#[derive(Debug, Clone, Copy)]
enum Next {
    Delivered,
    RetryWithin { lowest_s: i64, highest_s: i64 },
    Exhausted,
}

#[derive(Debug)]
struct Expected {
    next: Next,
    disable: Option<DisableReason>,
    status: Option<u16>,
    error: Option<&'static str>,
}

fn check(
    exchange: Exchange<'_>,
    n_attempts: u32,
    failing_since: Option<OffsetDateTime>,
    expected: Expected,
) {
    let schedule = RetrySchedule::from_seconds(&[10, 100]).unwrap();
    let facts = AttemptFacts {
        exchange,
        n_attempts,
        schedule: &schedule,
        failing_since,
        auto_disable_after: THRESHOLD,
        started_at: STARTED_AT,
        finished_at: FINISHED_AT,
    };
    let conclusion = conclude(&facts, &mut StdRng::seed_from_u64(7));
    let next_matches = match (conclusion.next, expected.next) {
        (NextStep::Delivered, Next::Delivered) | (NextStep::Exhausted, Next::Exhausted) => true,
        (
            NextStep::RetryAt(at),
            Next::RetryWithin {
                lowest_s,
                highest_s,
            },
        ) => (lowest_s..=highest_s).contains(&(at - FINISHED_AT).whole_seconds()),
        _ => false,
    };
    assert!(
        next_matches,
        "{exchange:?}: {conclusion:?}, expected {expected:?}"
    );
    assert_eq!(conclusion.disable, expected.disable, "{exchange:?}");
    assert_eq!(conclusion.status, expected.status, "{exchange:?}");
    assert_eq!(conclusion.error.as_deref(), expected.error, "{exchange:?}");
}

fn responded(status: u16) -> Exchange<'static> {
    Exchange::Responded {
        status,
        retry_after: None,
    }
}

#[test]
fn conclusions_after_an_attempt() {
    let first_retry = Next::RetryWithin {
        lowest_s: 8,
        highest_s: 12,
    };
    let long_ago = Some(datetime!(2025-01-01 00:00:00 UTC));
    let yesterday = Some(datetime!(2025-01-09 12:00:00 UTC));

    // 2xx: delivered, no error, and a long failing run does not matter any more.
    for (status, failing_since) in [(200, None), (204, long_ago)] {
        check(
            responded(status),
            1,
            failing_since,
            Expected {
                next: Next::Delivered,
                disable: None,
                status: Some(status),
                error: None,
            },
        );
    }
    // 410: exhausted at once and the endpoint is gone, even on the first attempt.
    check(
        responded(410),
        1,
        None,
        Expected {
            next: Next::Exhausted,
            disable: Some(DisableReason::Gone),
            status: Some(410),
            error: Some("HTTP 410"),
        },
    );
    // ... and `gone` wins over failing too long.
    check(
        responded(410),
        1,
        long_ago,
        Expected {
            next: Next::Exhausted,
            disable: Some(DisableReason::Gone),
            status: Some(410),
            error: Some("HTTP 410"),
        },
    );
    // 5xx without Retry-After: the schedule's wait, jittered.
    check(
        responded(500),
        1,
        yesterday,
        Expected {
            next: first_retry,
            disable: None,
            status: Some(500),
            error: Some("HTTP 500"),
        },
    );
    // 503 with Retry-After: the server's wait, exactly.
    check(
        Exchange::Responded {
            status: 503,
            retry_after: Some("30"),
        },
        1,
        None,
        Expected {
            next: Next::RetryWithin {
                lowest_s: 30,
                highest_s: 30,
            },
            disable: None,
            status: Some(503),
            error: Some("HTTP 503"),
        },
    );
    // 500 with Retry-After: the header counts for 429 and 503 only.
    check(
        Exchange::Responded {
            status: 500,
            retry_after: Some("30"),
        },
        1,
        None,
        Expected {
            next: first_retry,
            disable: None,
            status: Some(500),
            error: Some("HTTP 500"),
        },
    );
    // An unreadable Retry-After falls back on the schedule.
    check(
        Exchange::Responded {
            status: 429,
            retry_after: Some("soon"),
        },
        1,
        None,
        Expected {
            next: first_retry,
            disable: None,
            status: Some(429),
            error: Some("HTTP 429"),
        },
    );
    check(
        Exchange::TimedOut,
        1,
        None,
        Expected {
            next: first_retry,
            disable: None,
            status: None,
            error: Some("timed out"),
        },
    );
    check(
        Exchange::Failed {
            error: "could not connect: refused",
        },
        2,
        None,
        Expected {
            next: Next::RetryWithin {
                lowest_s: 80,
                highest_s: 120,
            },
            disable: None,
            status: None,
            error: Some("could not connect: refused"),
        },
    );
    // The schedule is used up.
    check(
        responded(502),
        3,
        yesterday,
        Expected {
            next: Next::Exhausted,
            disable: None,
            status: Some(502),
            error: Some("HTTP 502"),
        },
    );
    // Failing for longer than the threshold disables the endpoint; the delivery still retries.
    check(
        responded(500),
        1,
        long_ago,
        Expected {
            next: first_retry,
            disable: Some(DisableReason::FailingTooLong),
            status: Some(500),
            error: Some("HTTP 500"),
        },
    );
    check(
        Exchange::TimedOut,
        3,
        long_ago,
        Expected {
            next: Next::Exhausted,
            disable: Some(DisableReason::FailingTooLong),
            status: None,
            error: Some("timed out"),
        },
    );
}

#[test]
fn disable_reasons_round_trip() {
    fn check(text: &str, expected: Result<DisableReason, UnknownDisableReason>) {
        let parsed = text.parse::<DisableReason>();
        assert_eq!(parsed, expected, "{text:?}");
        if let Ok(reason) = parsed {
            assert_eq!(reason.as_str(), text);
            assert_eq!(reason.to_string(), text);
        }
    }
    check("gone", Ok(DisableReason::Gone));
    check("failing_too_long", Ok(DisableReason::FailingTooLong));
    check("Gone", Err(UnknownDisableReason("Gone".to_owned())));
    check("", Err(UnknownDisableReason(String::new())));
}
