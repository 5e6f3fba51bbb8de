//! Token buckets for per-endpoint rate limits: the pure arithmetic, which both storage backends
//! apply to the bucket they keep per endpoint.

use time::{Duration, OffsetDateTime};

/// A bucket that holds at most one second's worth of tokens and refills continuously.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    pub tokens: f64,
    pub refilled_at: OffsetDateTime,
}

impl TokenBucket {
    /// A full bucket: an endpoint that has sent nothing for a while may send a second's worth.
    pub fn full(rate_per_s: u32, now: OffsetDateTime) -> Self {
        TokenBucket {
            tokens: f64::from(rate_per_s.max(1)),
            refilled_at: now,
        }
    }

    /// Refills up to `now`, then takes one token; when none is there, says how long until one is.
    pub fn take(&mut self, rate_per_s: u32, now: OffsetDateTime) -> Result<(), Duration> {
        let rate = f64::from(rate_per_s.max(1));
        let elapsed = (now - self.refilled_at).as_seconds_f64().max(0.0);
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.refilled_at = now.max(self.refilled_at);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::seconds_f64((1.0 - self.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_rate_then_refills() {
        let start = OffsetDateTime::UNIX_EPOCH;
        let mut bucket = TokenBucket::full(2, start);
        assert_eq!(bucket.take(2, start), Ok(()));
        assert_eq!(bucket.take(2, start), Ok(()));
        assert_eq!(bucket.take(2, start), Err(Duration::milliseconds(500)));
        assert_eq!(bucket.take(2, start + Duration::milliseconds(500)), Ok(()));
        assert!(bucket.take(2, start + Duration::milliseconds(500)).is_err());
        // A long pause refills to one second's worth, not more.
        let later = start + Duration::hours(1);
        for _ in 0..2 {
            assert_eq!(bucket.take(2, later), Ok(()));
        }
        assert!(bucket.take(2, later).is_err());
    }
}
