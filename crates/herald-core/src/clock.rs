//! The `Clock` trait: the one way Herald code asks for the current time, so tests can step it.
//!
//! Production code holds a [`SystemClock`]; tests in every crate hold a [`ManualClock`] and move it
//! by hand, which keeps retry schedules, lease expiry and auto-disable checks deterministic without
//! sleeping.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use time::OffsetDateTime;

/// A source of the current time, always in UTC.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> OffsetDateTime;
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when a test tells it to.
///
/// It is shared between the code under test and the test itself (usually behind an `Arc`), so the
/// time lives behind a lock; `&self` methods let both sides hold it at once.
#[derive(Debug)]
pub struct ManualClock {
    // A std `Mutex` rather than an async one: the critical sections are a copy of a small value
    // and never span an `.await`.
    current: Mutex<OffsetDateTime>,
}

impl ManualClock {
    /// A clock that reads `start` until moved.
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            current: Mutex::new(start),
        }
    }

    /// Moves the clock forward by `by`. Saturates at the largest representable time instead of
    /// panicking, since a test that runs off the calendar has failed in a clearer way already.
    pub fn advance(&self, by: Duration) {
        let step = time::Duration::try_from(by).unwrap_or(time::Duration::MAX);
        let mut current = self.lock_current();
        *current = current.saturating_add(step);
    }

    /// Sets the clock to `instant`, forwards or backwards.
    pub fn set(&self, instant: OffsetDateTime) {
        *self.lock_current() = instant;
    }

    fn lock_current(&self) -> std::sync::MutexGuard<'_, OffsetDateTime> {
        // A poisoned lock only means another test thread panicked while holding it; the guarded
        // value is a plain timestamp that cannot be left half-written, so it is still good.
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.lock_current()
    }
}

// Lets callers hand an `Arc<ManualClock>` (kept by the test to move time) to code that is generic
// over `C: Clock`.
impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> OffsetDateTime {
        (**self).now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// One step applied to a manual clock in the table below.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        Advance(Duration),
        Set(OffsetDateTime),
    }

    fn check(start: OffsetDateTime, steps: &[Step], expected: OffsetDateTime) {
        let clock = Arc::new(ManualClock::new(start));
        for step in steps {
            match *step {
                Step::Advance(by) => clock.advance(by),
                Step::Set(instant) => clock.set(instant),
            }
        }
        // Read through the trait object and through the Arc impl: both must agree.
        let as_trait_object: &dyn Clock = &*clock;
        assert_eq!(as_trait_object.now(), expected, "steps: {steps:?}");
        assert_eq!(Clock::now(&clock), expected, "steps: {steps:?}");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = datetime!(2025-01-01 00:00:00 UTC);
        check(start, &[], start);
        check(
            start,
            &[Step::Advance(Duration::from_secs(5))],
            datetime!(2025-01-01 00:00:05 UTC),
        );
        check(
            start,
            &[
                Step::Advance(Duration::from_secs(60)),
                Step::Advance(Duration::from_millis(1500)),
            ],
            datetime!(2025-01-01 00:01:01.5 UTC),
        );
        check(
            start,
            &[
                Step::Advance(Duration::from_secs(3600)),
                Step::Set(datetime!(2024-12-31 23:00:00 UTC)),
            ],
            datetime!(2024-12-31 23:00:00 UTC),
        );
        check(
            start,
            &[Step::Advance(Duration::MAX)],
            start.saturating_add(time::Duration::MAX),
        );
    }

    #[test]
    fn system_clock_is_utc() {
        assert_eq!(SystemClock.now().offset(), time::UtcOffset::UTC);
    }
}
