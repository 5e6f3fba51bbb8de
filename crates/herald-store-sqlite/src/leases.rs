//! Leases held in memory: which deliveries this process is attempting now, and until when.
//!
//! One process owns the file (`open.rs`), so no other node can take over its work, and a file is
//! opened with nothing in flight (every attempt of a dead process is due again). A lease then
//! need not be written: a claim is a read, and a delivery is written twice, when it is created
//! and when its attempt is recorded (issue 16). The row of a leased delivery stays `pending` or
//! `scheduled`; readers of deliveries see it `in_flight` (see [`Leases::shown_state`]).
//!
//! The rule that keeps a delivery from being claimed twice: a claim copies the leases *before*
//! it begins reading, and a lease ends only *after* the write that finished its delivery has
//! committed. A lease that ended before the copy was taken ended after its commit, so the
//! claim's reads (all later than the copy) see the delivery finished; a lease that ends after
//! the copy is still in it, and the claim skips the delivery.

use std::collections::HashMap;
use std::sync::Mutex;

use herald_core::delivery::DeliveryState;
use herald_core::ids::{DeliveryId, EndpointId};

/// One delivery being attempted: by which endpoint, and until when (ms since the epoch) the
/// attempt may run before it counts as lost and the delivery is due again.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    /// The delivery's `rowid_`, by which claims look leases up while they walk an index.
    pub(crate) rowid: i64,
    pub(crate) endpoint_id: EndpointId,
    pub(crate) until_ms: i64,
}

/// The leases of this process, by delivery id.
#[derive(Debug, Default)]
pub(crate) struct Leases {
    held: Mutex<HashMap<String, Lease>>,
}

impl Leases {
    /// The leases as they are now, for one claim to judge by.
    pub(crate) fn copy(&self) -> LeaseView {
        LeaseView {
            held: self
                .lock()
                .values()
                .map(|lease| (lease.rowid, lease.clone()))
                .collect(),
        }
    }

    /// Records leases a claim granted, replacing a lost attempt's lease on the same delivery.
    pub(crate) fn grant(&self, granted: impl IntoIterator<Item = (DeliveryId, Lease)>) {
        let mut held = self.lock();
        for (delivery_id, lease) in granted {
            held.insert(delivery_id.into_string(), lease);
        }
    }

    /// Ends the lease of a delivery whose attempt was recorded (or released), once that write
    /// has committed.
    pub(crate) fn end(&self, delivery_id: &str) {
        self.lock().remove(delivery_id);
    }

    /// Whether this process is attempting the delivery (or lost its attempt, the lease not yet
    /// taken over).
    pub(crate) fn holds(&self, delivery_id: &str) -> bool {
        self.lock().contains_key(delivery_id)
    }

    /// The state a reader is shown: a leased delivery is `in_flight`, as on PostgreSQL, even
    /// though its row still says it waits.
    pub(crate) fn shown_state(&self, delivery_id: &str, stored: DeliveryState) -> DeliveryState {
        let waits = matches!(stored, DeliveryState::Pending | DeliveryState::Scheduled);
        if waits && self.lock().contains_key(delivery_id) {
            DeliveryState::InFlight
        } else {
            stored
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        // A panic while the map was held cannot leave it half-changed (each change is one map
        // operation), so a poisoned lock is still a consistent map.
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A copy of the leases taken before a claim's first read (see the module comment), by the
/// deliveries' `rowid_`.
#[derive(Debug)]
pub(crate) struct LeaseView {
    held: HashMap<i64, Lease>,
}

impl LeaseView {
    /// Whether the delivery's attempt is still running at `now_ms` (its lease has not run out).
    pub(crate) fn running(&self, rowid: i64, now_ms: i64) -> bool {
        self.held
            .get(&rowid)
            .is_some_and(|lease| lease.until_ms > now_ms)
    }

    /// Whether the delivery is leased at all, lost attempts included.
    pub(crate) fn holds(&self, rowid: i64) -> bool {
        self.held.contains_key(&rowid)
    }

    /// The endpoint's attempts running at `now_ms`.
    pub(crate) fn busy(&self, endpoint_id: &EndpointId, now_ms: i64) -> u32 {
        let running = self
            .held
            .values()
            .filter(|lease| lease.endpoint_id == *endpoint_id && lease.until_ms > now_ms)
            .count();
        u32::try_from(running).unwrap_or(u32::MAX)
    }

    /// How many of the endpoint's deliveries are leased, lost attempts included: how far past
    /// its first due rows a read must look to find ones that are free.
    pub(crate) fn n_leased(&self, endpoint_id: &EndpointId) -> usize {
        self.held
            .values()
            .filter(|lease| lease.endpoint_id == *endpoint_id)
            .count()
    }

    /// When the endpoint's earliest lease runs out, if it holds any: its delivery is due again
    /// then.
    pub(crate) fn earliest_expiry(&self, endpoint_id: &EndpointId) -> Option<i64> {
        self.held
            .values()
            .filter(|lease| lease.endpoint_id == *endpoint_id)
            .map(|lease| lease.until_ms)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(rowid: i64, endpoint: &str, until_ms: i64) -> Lease {
        Lease {
            rowid,
            endpoint_id: EndpointId::parse(endpoint).expect("endpoint id"),
            until_ms,
        }
    }

    fn delivery(id: &str) -> DeliveryId {
        DeliveryId::parse(id).expect("delivery id")
    }

    #[test]
    fn a_copy_keeps_a_lease_that_ends_after_it_was_taken() {
        let leases = Leases::default();
        leases.grant([(delivery("dl_1"), lease(1, "ep_1", 100))]);
        let view = leases.copy();
        leases.end("dl_1");
        assert!(view.running(1, 50), "the claim still skips it");
        assert!(!leases.copy().holds(1), "a later claim does not");
    }

    #[test]
    fn an_endpoint_is_busy_only_with_its_own_unexpired_leases() {
        let leases = Leases::default();
        leases.grant([
            (delivery("dl_1"), lease(1, "ep_1", 100)),
            (delivery("dl_2"), lease(2, "ep_1", 40)),
            (delivery("dl_3"), lease(3, "ep_2", 100)),
        ]);
        let view = leases.copy();
        let ep_1 = EndpointId::parse("ep_1").expect("endpoint id");
        assert_eq!(view.busy(&ep_1, 50), 1, "dl_2's attempt is lost by 50");
        assert_eq!(view.n_leased(&ep_1), 2);
        assert!(!view.running(2, 50));
        assert!(view.holds(2));
        assert_eq!(view.earliest_expiry(&ep_1), Some(40));
        let ep_3 = EndpointId::parse("ep_3").expect("endpoint id");
        assert_eq!(view.earliest_expiry(&ep_3), None);
    }

    #[test]
    fn only_a_waiting_leased_delivery_is_shown_in_flight() {
        let leases = Leases::default();
        leases.grant([(delivery("dl_1"), lease(1, "ep_1", 100))]);
        assert_eq!(
            leases.shown_state("dl_1", DeliveryState::Scheduled),
            DeliveryState::InFlight
        );
        assert_eq!(
            leases.shown_state("dl_1", DeliveryState::Cancelled),
            DeliveryState::Cancelled,
            "a delivery cancelled while its attempt runs is shown cancelled"
        );
        assert_eq!(
            leases.shown_state("dl_2", DeliveryState::Pending),
            DeliveryState::Pending
        );
    }
}
