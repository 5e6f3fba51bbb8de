//! The claim planner: the rules that decide what a claim may take, written once for every
//! backend. A backend keeps only its SQL: it reads what the rules ask for (the endpoints with due
//! work, an endpoint's running attempts, its due deliveries, its rate bucket) and writes what they
//! decide. Replay bounds and route matching live here for the same reason.
//!
//! The rules, in the order a claim applies them:
//!
//! 1. **Rotation** ([`visiting_order`]): endpoints are visited from the one in turn, which moves
//!    on with every claim, wrapping around, so endpoints take turns when room is short.
//! 2. **Fair share** ([`fair_share`]): no endpoint takes more than its share of the batch.
//! 3. **Free slots and ordering** ([`offer`]): what an endpoint may take is the smallest of its
//!    free concurrency, its fair share and the room left; `strict` offers its queue's head only
//!    while nothing of it is in flight, `subject` the deliveries that head their subject.
//! 4. **Subject look-ahead** ([`SubjectLookAhead`]): a subject-ordered endpoint reads past every
//!    due delivery that waits behind an earlier one of its subject, so one busy subject never
//!    holds up the others.
//! 5. **Token bucket** ([`rate_limit`]): candidates beyond the endpoint's rate are postponed until
//!    the next token is there, so nobody spins on them.

use herald_catalog::taxonomy::Taxonomy;
use herald_core::rate::TokenBucket;
use time::OffsetDateTime;

use crate::models::{EndpointFilter, EndpointRecord, Ordering, ReplaySelector};

/// Each endpoint's share of a claim of `limit` deliveries over `n_endpoints` endpoints: a busy
/// endpoint cannot starve the others.
pub fn fair_share(limit: usize, n_endpoints: usize) -> usize {
    limit.div_ceil(n_endpoints.max(1)).max(1)
}

/// The indexes of `n_endpoints` endpoints in the order a claim visits them: from the one in turn
/// (`turn` modulo the count) to the last, then from the first up to it. The flag is true for the
/// visits before the wrap-around: a backend that locks endpoints in list order may wait for those
/// locks, and only try the others (see the PostgreSQL backend's `claims.rs`).
pub fn visiting_order(n_endpoints: usize, turn: usize) -> impl Iterator<Item = (usize, bool)> {
    let start = if n_endpoints == 0 {
        0
    } else {
        turn % n_endpoints
    };
    (start..n_endpoints)
        .map(|endpoint_idx| (endpoint_idx, true))
        .chain((0..start).map(|endpoint_idx| (endpoint_idx, false)))
}

/// What a claim reads of one endpoint's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Nothing: no free slot or share, or a strict queue's head is in flight.
    Nothing,
    /// Up to this many due deliveries, earliest due first.
    Earliest(usize),
    /// Up to this many due deliveries with no earlier unfinished delivery of their subject,
    /// earliest due first.
    SubjectHeads(usize),
    /// The queue's unfinished delivery with the smallest seq, if it is due.
    StrictHead,
}

/// What `endpoint`, with `busy` attempts running (unexpired leases), may take from a claim that
/// gives it `fair_share` and has `room` left.
pub fn offer(endpoint: &EndpointRecord, busy: u32, fair_share: usize, room: usize) -> Offer {
    let free = endpoint.max_concurrency.max(1).saturating_sub(busy) as usize;
    let wanted = free.min(fair_share).min(room);
    if wanted == 0 {
        return Offer::Nothing;
    }
    match endpoint.ordering {
        Ordering::None => Offer::Earliest(wanted),
        Ordering::Subject => Offer::SubjectHeads(wanted),
        Ordering::Strict if busy == 0 => Offer::StrictHead,
        Ordering::Strict => Offer::Nothing,
    }
}

/// Reading a subject-ordered endpoint's due deliveries in windows that grow until enough of them
/// head their subject or the queue has no more: every blocked delivery is read past, however many
/// there are. For a backend that judges heads after reading (SQLite); one that judges them in its
/// query (PostgreSQL) reads past them there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubjectLookAhead {
    wanted: usize,
    window: usize,
}

impl SubjectLookAhead {
    /// The first window is four times what is wanted: most due deliveries head their subject.
    pub fn new(wanted: usize) -> Self {
        SubjectLookAhead {
            wanted,
            window: wanted.saturating_mul(4).max(1),
        }
    }

    /// How many due deliveries to read (earliest due first) this time.
    pub fn window(&self) -> usize {
        self.window
    }

    /// After a read of [`SubjectLookAhead::window`] deliveries returned `n_read`, of which
    /// `n_heads` head their subject: whether to read again, with a larger window.
    pub fn read_more(&mut self, n_read: usize, n_heads: usize) -> bool {
        if n_heads >= self.wanted || n_read < self.window {
            return false;
        }
        self.window = self.window.saturating_mul(2);
        true
    }
}

/// What the rate limit lets through of an endpoint's candidates.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimited<T> {
    /// To be leased now, in the order given.
    pub admitted: Vec<T>,
    /// Held back, each not due again before this time (when the next token is there).
    pub postponed: Vec<(T, OffsetDateTime)>,
    /// The bucket to store back, when the endpoint has a rate limit.
    pub bucket: Option<TokenBucket>,
}

/// Lets `candidates` through the endpoint's token bucket (`stored`, or a full one when it has
/// none yet); without a rate limit all of them pass.
pub fn rate_limit<T>(
    rate_limit_per_s: Option<u32>,
    stored: Option<TokenBucket>,
    candidates: Vec<T>,
    now: OffsetDateTime,
) -> RateLimited<T> {
    let Some(rate) = rate_limit_per_s else {
        return RateLimited {
            admitted: candidates,
            postponed: Vec::new(),
            bucket: None,
        };
    };
    let mut bucket = stored.unwrap_or_else(|| TokenBucket::full(rate, now));
    let mut admitted = Vec::with_capacity(candidates.len());
    let mut postponed = Vec::new();
    for candidate in candidates {
        match bucket.take(rate, now) {
            Ok(()) => admitted.push(candidate),
            Err(wait) => postponed.push((candidate, now + wait)),
        }
    }
    RateLimited {
        admitted,
        postponed,
        bucket: Some(bucket),
    }
}

/// The earliest `limit` of candidates read per state, by due time (a stable sort: ties keep the
/// order read).
pub fn earliest_due<T, K: Ord>(
    mut candidates: Vec<T>,
    due_at: impl Fn(&T) -> K,
    limit: usize,
) -> Vec<T> {
    candidates.sort_by_key(|candidate| due_at(candidate));
    candidates.truncate(limit);
    candidates
}

/// A strict queue's head among the first unfinished delivery of each state: the one with the
/// smallest seq, offered only if it is due.
pub fn strict_head<T>(
    firsts: impl IntoIterator<Item = T>,
    seq: impl Fn(&T) -> i64,
    is_due: impl Fn(&T) -> bool,
) -> Option<T> {
    firsts
        .into_iter()
        .min_by_key(|first| seq(first))
        .filter(|head| is_due(head))
}

/// Whether an endpoint with these filters gets a delivery of this event on publish.
pub fn routes_to(filters: &[EndpointFilter], event_type: &str, taxonomy: Taxonomy) -> bool {
    filters
        .iter()
        .any(|filter| filter.matches(event_type, taxonomy))
}

/// What a replay reads from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayPlan<'a> {
    /// Make the endpoint's exhausted deliveries due again; nothing is read from the log.
    FailedAgain,
    /// New deliveries for the events after `after_seq` received at or after `received_since`
    /// (or only `only_event`), that are not erased.
    FromLog {
        after_seq: i64,
        received_since: Option<OffsetDateTime>,
        only_event: Option<&'a str>,
    },
}

impl<'a> ReplayPlan<'a> {
    pub fn of(selector: &'a ReplaySelector) -> Self {
        match selector {
            ReplaySelector::Failed => ReplayPlan::FailedAgain,
            ReplaySelector::Event(event_id) => ReplayPlan::FromLog {
                after_seq: 0,
                received_since: None,
                only_event: Some(event_id),
            },
            ReplaySelector::SinceSeq(seq) => ReplayPlan::FromLog {
                after_seq: *seq,
                received_since: None,
                only_event: None,
            },
            ReplaySelector::SinceTime(time) => ReplayPlan::FromLog {
                after_seq: 0,
                received_since: Some(*time),
                only_event: None,
            },
        }
    }
}

/// Whether a replay from the log delivers this event to the endpoint: one asked for by id always
/// goes, whatever the filters say; otherwise the filters decide, as on publish.
pub fn replay_wants(
    only_event: Option<&str>,
    filters: &[EndpointFilter],
    event_type: &str,
    taxonomy: Taxonomy,
) -> bool {
    only_event.is_some() || routes_to(filters, event_type, taxonomy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::endpoint;

    fn check_offer(
        ordering: Ordering,
        max_concurrency: u32,
        busy: u32,
        share: usize,
        room: usize,
        expected: Offer,
    ) {
        let mut record = endpoint("t", "ep_1", &["*"], ordering);
        record.max_concurrency = max_concurrency;
        assert_eq!(
            offer(&record, busy, share, room),
            expected,
            "{ordering:?}, max {max_concurrency}, busy {busy}, share {share}, room {room}"
        );
    }

    #[test]
    fn an_endpoint_is_offered_the_smallest_of_its_slots_share_and_room() {
        check_offer(Ordering::None, 16, 0, 5, 100, Offer::Earliest(5));
        check_offer(Ordering::None, 16, 14, 5, 100, Offer::Earliest(2));
        check_offer(Ordering::None, 16, 0, 5, 3, Offer::Earliest(3));
        check_offer(Ordering::None, 2, 2, 5, 100, Offer::Nothing);
        // A limit of 0 still allows one attempt at a time.
        check_offer(Ordering::None, 0, 0, 5, 100, Offer::Earliest(1));
        check_offer(Ordering::Subject, 16, 3, 5, 100, Offer::SubjectHeads(5));
        check_offer(Ordering::Strict, 16, 0, 5, 100, Offer::StrictHead);
        check_offer(Ordering::Strict, 16, 1, 5, 100, Offer::Nothing);
        check_offer(Ordering::Strict, 16, 0, 5, 0, Offer::Nothing);
    }

    #[test]
    fn endpoints_take_turns_and_share_the_batch() {
        let order = |n, turn| visiting_order(n, turn).collect::<Vec<_>>();
        assert_eq!(order(3, 0), [(0, true), (1, true), (2, true)]);
        assert_eq!(order(3, 4), [(1, true), (2, true), (0, false)]);
        assert_eq!(order(0, 7), []);
        assert_eq!(fair_share(10, 3), 4);
        assert_eq!(fair_share(2, 5), 1);
        assert_eq!(fair_share(0, 5), 1);
    }

    #[test]
    fn the_subject_look_ahead_grows_until_enough_heads_or_the_end() {
        let mut look_ahead = SubjectLookAhead::new(2);
        assert_eq!(look_ahead.window(), 8);
        assert!(
            look_ahead.read_more(8, 1),
            "a full window without enough heads"
        );
        assert_eq!(look_ahead.window(), 16);
        assert!(!look_ahead.read_more(16, 2), "enough heads");
        let mut short = SubjectLookAhead::new(2);
        assert!(!short.read_more(5, 0), "the queue ended");
    }

    #[test]
    fn the_rate_limit_postpones_what_has_no_token() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let limited = rate_limit(Some(2), None, vec!["a", "b", "c"], now);
        assert_eq!(limited.admitted, ["a", "b"]);
        assert_eq!(
            limited.postponed,
            [("c", now + time::Duration::milliseconds(500))]
        );
        assert!(limited.bucket.is_some());
        let unlimited = rate_limit(None, None, vec!["a", "b", "c"], now);
        assert_eq!(unlimited.admitted, ["a", "b", "c"]);
        assert_eq!(unlimited.bucket, None);
    }

    #[test]
    fn a_strict_head_is_the_smallest_seq_and_only_when_due() {
        let head = |firsts: Vec<(i64, bool)>| strict_head(firsts, |first| first.0, |first| first.1);
        assert_eq!(head(vec![(5, true), (3, true), (9, true)]), Some((3, true)));
        assert_eq!(
            head(vec![(5, true), (3, false)]),
            None,
            "the head is not due"
        );
        assert_eq!(head(Vec::new()), None);
        assert_eq!(earliest_due(vec![3, 1, 2], |n| *n, 2), [1, 2]);
    }

    #[test]
    fn replays_read_the_log_within_their_bounds() {
        let selector = ReplaySelector::SinceSeq(7);
        assert_eq!(
            ReplayPlan::of(&selector),
            ReplayPlan::FromLog {
                after_seq: 7,
                received_since: None,
                only_event: None
            }
        );
        assert_eq!(
            ReplayPlan::of(&ReplaySelector::Failed),
            ReplayPlan::FailedAgain
        );
        let filters = EndpointFilter::parse_all(&["user.*"]).unwrap();
        assert!(replay_wants(
            Some("e1"),
            &filters,
            "session.revoked",
            Taxonomy::Authgear
        ));
        assert!(!replay_wants(
            None,
            &filters,
            "session.revoked",
            Taxonomy::Authgear
        ));
        assert!(replay_wants(
            None,
            &filters,
            "user.created",
            Taxonomy::Authgear
        ));
    }
}
