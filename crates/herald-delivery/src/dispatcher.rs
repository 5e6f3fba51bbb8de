//! The delivery worker: claims due deliveries from the store, renders and signs each event, sends
//! it, and records what happened.
//!
//! [`Dispatcher::run_once`] is one deterministic step (claim, attempt everything claimed, record),
//! which tests drive directly. [`Dispatcher::run`] is the background loop: it keeps claiming while
//! there is room, runs each attempt as its own task so one slow endpoint never holds up another,
//! and sleeps until it is woken by a publish or the next delivery falls due.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_catalog::envelope::RenderOptions;
use herald_core::asymmetric::Ed25519SigningKey;
use herald_core::clock::Clock;
use herald_core::delivery::{AttemptFacts, Conclusion, Exchange, conclude};
use herald_core::ids::{DeliveryId, EndpointId};
use herald_core::signing::SigningError;
use herald_store::models::{AttemptOutcome, AttemptRecord, ClaimedDelivery, NextStep, Ordering};
use herald_store::operational::{self, AttemptReport};
use herald_store::{Store, StoreError};
use time::OffsetDateTime;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use crate::http_client::{HttpClient, OutboundError, OutboundRequest, OutboundResult};
use crate::listen::{LISTEN_URL_SCHEME, ListenDelivery, ListenHub};
use crate::native::native_signature;
use crate::outbound::{Outbound, signed_request};
use crate::rendered::RenderedBodies;
use crate::v1a_keys::load_live_ed25519_keys;

/// How the dispatcher paces itself.
#[derive(Debug, Clone)]
pub struct DispatcherSettings {
    /// Deliveries claimed per store round trip.
    pub batch_size: usize,
    /// Attempts in flight at once on this node, across endpoints.
    pub max_in_flight: usize,
    /// How long a claim is leased: longer than the longest request timeout, so a live node never
    /// loses work it is still doing, and short enough that a dead node's work is soon taken over.
    pub lease: Duration,
    /// An endpoint that has only failed for this long is disabled.
    pub auto_disable_after: Duration,
    /// The loop looks at the store at least this often even when nothing wakes it, to notice
    /// leases expiring on other nodes' work.
    pub idle_poll: Duration,
    /// On shutdown, how long attempts in flight may take to finish before they are released.
    pub shutdown_grace: Duration,
    /// How long a rotated-out Ed25519 key keeps signing `v1a` beside the new one (the API's
    /// secret overlap, for which the JWKS publishes it too).
    pub key_overlap: time::Duration,
}

impl Default for DispatcherSettings {
    fn default() -> Self {
        DispatcherSettings {
            batch_size: 64,
            max_in_flight: 256,
            lease: Duration::from_secs(90),
            auto_disable_after: Duration::from_secs(5 * 24 * 3600),
            idle_poll: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            key_overlap: time::Duration::hours(24),
        }
    }
}

/// Why a dispatcher step failed. Attempts themselves never fail: every outcome is recorded.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug)]
pub struct Dispatcher {
    store: Arc<dyn Store>,
    client: HttpClient,
    /// Streams of `herald listen` connected to this node (the `listen` transport).
    listen: Arc<ListenHub>,
    clock: Arc<dyn Clock>,
    settings: DispatcherSettings,
    wakeup: Arc<Notify>,
    /// Deliveries claimed by this node and not yet recorded, to release on shutdown.
    claimed: Mutex<HashMap<DeliveryId, EndpointId>>,
    /// The bodies rendered last: an event going to several endpoints is rendered once per format.
    rendered: RenderedBodies,
}

/// Bodies kept rendered: a few claims' worth, so the deliveries of one event to many endpoints,
/// claimed together or one claim apart, share one rendering.
const RENDERED_BODIES: usize = 256;

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        client: HttpClient,
        listen: Arc<ListenHub>,
        clock: Arc<dyn Clock>,
        settings: DispatcherSettings,
        wakeup: Arc<Notify>,
    ) -> Arc<Self> {
        Arc::new(Dispatcher {
            store,
            client,
            listen,
            clock,
            settings,
            wakeup,
            claimed: Mutex::new(HashMap::new()),
            rendered: RenderedBodies::new(RENDERED_BODIES),
        })
    }

    /// One step: claims what is due now and attempts all of it, concurrently, returning how many
    /// attempts were made.
    pub async fn run_once(self: &Arc<Self>) -> Result<usize, DispatchError> {
        let claimed = self.claim(self.settings.batch_size).await?;
        let n_claimed = claimed.len();
        let mut attempts = JoinSet::new();
        for delivery in claimed {
            let dispatcher = Arc::clone(self);
            attempts.spawn(async move { dispatcher.attempt(delivery).await });
        }
        let mut first_error = None;
        while let Some(joined) = attempts.join_next().await {
            match joined {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => first_error = first_error.or(Some(error)),
                Err(panic) => tracing::error!(%panic, "a delivery attempt task failed"),
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(n_claimed),
        }
    }

    async fn claim(&self, limit: usize) -> Result<Vec<ClaimedDelivery>, DispatchError> {
        let lease = time::Duration::try_from(self.settings.lease).unwrap_or(time::Duration::MINUTE);
        let asked = std::time::Instant::now();
        let claimed = self.store.claim_due(self.clock.now(), limit, lease).await?;
        // Store round trips are timed apart from the HTTP exchange: a slot is held from its
        // claim until its record is written, so these bound how fast an endpoint's slots turn.
        metrics::histogram!("herald_claim_seconds").record(asked.elapsed().as_secs_f64());
        if let Ok(mut held) = self.claimed.lock() {
            held.extend(
                claimed
                    .iter()
                    .map(|delivery| (delivery.delivery_id.clone(), delivery.endpoint.id.clone())),
            );
        }
        Ok(claimed)
    }

    /// The background loop, until `shutdown` turns true. Attempts still running at shutdown get
    /// `shutdown_grace` to finish; what is left is released so another node (or the next start)
    /// takes it at once.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.settings.max_in_flight));
        let mut attempts = JoinSet::new();
        while !*shutdown.borrow() {
            while attempts.try_join_next().is_some() {}
            let room = slots.available_permits().min(self.settings.batch_size);
            let claimed = if room == 0 {
                Ok(Vec::new())
            } else {
                self.claim(room).await
            };
            let n_claimed = match claimed {
                Ok(claimed) => {
                    let n_claimed = claimed.len();
                    for delivery in claimed {
                        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                            break;
                        };
                        let dispatcher = Arc::clone(&self);
                        let slots = Arc::clone(&slots);
                        attempts.spawn(async move {
                            let frees_work = match dispatcher.attempt(delivery).await {
                                Ok(frees_work) => frees_work,
                                Err(error) => {
                                    tracing::warn!(%error, "delivery attempt not recorded; its lease will expire");
                                    true
                                }
                            };
                            let all_slots_taken = slots.available_permits() == 0;
                            drop(slot);
                            // Only an attempt that may have made work claimable wakes the loop
                            // for another claim; the rest would cost an empty one each.
                            if frees_work || all_slots_taken {
                                dispatcher.wakeup.notify_one();
                            }
                        });
                    }
                    n_claimed
                }
                Err(error) => {
                    tracing::warn!(%error, "claiming deliveries failed");
                    0
                }
            };
            if n_claimed > 0 && n_claimed == room {
                continue;
            }
            let mut sleep_for = self.idle_sleep().await;
            if n_claimed == 0 {
                // Work that is due but was not claimable (an ordered queue's head in flight, an
                // endpoint at its concurrency limit) is freed by an attempt finishing, which wakes
                // this loop; the floor keeps it from spinning meanwhile.
                sleep_for = sleep_for.max(Duration::from_millis(100));
            }
            tokio::select! {
                () = self.wakeup.notified() => {}
                () = tokio::time::sleep(sleep_for) => {}
                _ = shutdown.changed() => {}
            }
        }
        let drained = tokio::time::timeout(self.settings.shutdown_grace, async {
            while attempts.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            attempts.abort_all();
        }
        self.release_unfinished().await;
    }

    /// How long to sleep when there is nothing to do right now.
    async fn idle_sleep(&self) -> Duration {
        let fallback = self.settings.idle_poll;
        match self.store.next_due_at().await {
            Ok(Some(due)) => {
                let wait = due - self.clock.now();
                Duration::try_from(wait)
                    .unwrap_or(Duration::ZERO)
                    .min(fallback)
            }
            Ok(None) => fallback,
            Err(error) => {
                tracing::warn!(%error, "could not read the next due time");
                Duration::from_secs(1)
            }
        }
    }

    async fn release_unfinished(&self) {
        let unfinished: Vec<DeliveryId> = self
            .claimed
            .lock()
            .map(|mut held| held.drain().map(|(delivery_id, _)| delivery_id).collect())
            .unwrap_or_default();
        let now = self.clock.now();
        for delivery_id in unfinished {
            if let Err(error) = self.store.release(delivery_id.as_str(), now).await {
                tracing::warn!(%error, %delivery_id, "could not release a delivery at shutdown");
            }
        }
    }

    /// Forgets a finished delivery; says whether its endpoint had as many of this node's
    /// attempts running as its `max_concurrency` allows (this one included).
    fn forget(&self, delivery: &ClaimedDelivery) -> bool {
        let Ok(mut held) = self.claimed.lock() else {
            return true;
        };
        let endpoint_id = &delivery.endpoint.id;
        let running = held
            .values()
            .filter(|held_for| *held_for == endpoint_id)
            .count();
        held.remove(&delivery.delivery_id);
        running >= usize::try_from(delivery.endpoint.max_concurrency).unwrap_or(usize::MAX)
    }

    /// Sends one claimed delivery and records the outcome. Answers whether the attempt may have
    /// made other work claimable: the next head of an ordered queue, a slot of an endpoint at its
    /// concurrency limit, or a retry whose due time the idle sleep must learn. Otherwise a claim
    /// right after it would find nothing new (issue 16: "skip the empty claim").
    async fn attempt(&self, delivery: ClaimedDelivery) -> Result<bool, DispatchError> {
        let result = self.attempt_inner(&delivery).await;
        let was_at_limit = self.forget(&delivery);
        result.map(|next| {
            next != NextStep::Delivered
                || was_at_limit
                || delivery.endpoint.ordering != Ordering::None
        })
    }

    /// One attempt: plan (render and sign), send, conclude (pure, in the core), record.
    async fn attempt_inner(&self, delivery: &ClaimedDelivery) -> Result<NextStep, DispatchError> {
        // The endpoint's rate limit was applied when the delivery was claimed, in the store, so
        // that it holds across nodes.
        let started_at = self.clock.now();
        let outbound = match self.plan(delivery, started_at).await {
            Ok(request) => self.send(delivery, request).await,
            Err(error) => OutboundResult::Failed {
                error: OutboundError::Other(format!("cannot sign: {error}")),
                latency: Duration::ZERO,
            },
        };
        let finished_at = self.clock.now();
        let transport_error = match &outbound {
            OutboundResult::Failed { error, .. } => error.to_string(),
            OutboundResult::Responded { .. } => String::new(),
        };
        let exchange = match &outbound {
            OutboundResult::Responded {
                status,
                retry_after,
                ..
            } => Exchange::Responded {
                status: *status,
                retry_after: retry_after.as_deref(),
            },
            OutboundResult::Failed {
                error: OutboundError::Timeout,
                ..
            } => Exchange::TimedOut,
            OutboundResult::Failed { .. } => Exchange::Failed {
                error: &transport_error,
            },
        };
        let conclusion = conclude(
            &AttemptFacts {
                exchange,
                n_attempts: delivery.n_attempts + 1,
                schedule: &delivery.endpoint.retry_schedule,
                failing_since: delivery.endpoint.failing_since,
                auto_disable_after: self.settings.auto_disable_after,
                started_at,
                finished_at,
            },
            &mut rand::thread_rng(),
        );
        self.record(delivery, started_at, finished_at, outbound, conclusion)
            .await
    }

    /// The request for one attempt: the event rendered in the endpoint's format, signed with its
    /// live secrets (and the tenant's Ed25519 keys for `v1a`).
    async fn plan(
        &self,
        delivery: &ClaimedDelivery,
        started_at: OffsetDateTime,
    ) -> Result<OutboundRequest, SigningError> {
        let endpoint = &delivery.endpoint;
        let event = &delivery.event;
        let options = RenderOptions {
            tenant_id: &endpoint.tenant_id,
            issuer: &delivery.tenant_issuer,
        };
        let body = self.rendered.body(event, endpoint.format, &options);
        let extra_headers: Vec<(String, String)> = endpoint
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let ed25519_keys = self.ed25519_keys(delivery, started_at).await;
        let ed25519_refs: Vec<&Ed25519SigningKey> = ed25519_keys.iter().collect();
        signed_request(Outbound {
            url: &endpoint.url,
            extra_headers: &extra_headers,
            body,
            secrets: &endpoint.live_secrets(started_at),
            ed25519_keys: &ed25519_refs,
            scheme: endpoint.signature_scheme,
            native: native_signature(endpoint.format, event.taxonomy),
            msg_id: &event.id,
            timestamp_s: started_at.unix_timestamp(),
            timeout: Duration::from_millis(endpoint.timeout_ms),
        })
    }

    /// Writes the attempt, the delivery's next state and any endpoint change in one store call,
    /// with Herald's own events about it, and counts it in the metrics.
    async fn record(
        &self,
        delivery: &ClaimedDelivery,
        started_at: OffsetDateTime,
        finished_at: OffsetDateTime,
        outbound: OutboundResult,
        conclusion: Conclusion,
    ) -> Result<NextStep, DispatchError> {
        let endpoint = &delivery.endpoint;
        let Conclusion {
            next,
            disable,
            status,
            error,
        } = conclusion;
        let n_attempts = delivery.n_attempts + 1;
        let latency = outbound.latency();
        record_metrics(delivery, next, latency, finished_at);
        let excerpt = match outbound {
            OutboundResult::Responded { body_excerpt, .. } => Some(body_excerpt),
            OutboundResult::Failed { .. } => None,
        };
        // Herald's own events about this attempt are written in the attempt's own transaction,
        // so a crash cannot record the one without the other.
        let operational_events = operational::events_after_attempt(&AttemptReport {
            delivery,
            next,
            disable_reason: disable,
            last_status: status,
            last_error: error.as_deref(),
            n_attempts,
            now: finished_at,
        });
        let recording = std::time::Instant::now();
        let published = self
            .store
            .record_attempt(AttemptOutcome {
                tenant_id: endpoint.tenant_id.clone(),
                endpoint_id: endpoint.id.clone(),
                attempt: AttemptRecord {
                    delivery_id: delivery.delivery_id.clone(),
                    attempt_number: n_attempts,
                    started_at,
                    status,
                    latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
                    response_excerpt: excerpt,
                    error,
                },
                next,
                disable_endpoint: disable,
                now: finished_at,
                operational_events,
            })
            .await?;
        metrics::histogram!("herald_attempt_record_seconds")
            .record(recording.elapsed().as_secs_f64());
        if published.iter().any(|outcome| outcome.n_deliveries > 0) {
            self.wakeup.notify_one();
        }
        Ok(next)
    }

    /// The tenant's live Ed25519 keys when the endpoint signs `v1a`, none otherwise. A store
    /// error leaves none, so the attempt fails to sign and is retried on the schedule.
    async fn ed25519_keys(
        &self,
        delivery: &ClaimedDelivery,
        now: OffsetDateTime,
    ) -> Vec<Ed25519SigningKey> {
        let endpoint = &delivery.endpoint;
        if !endpoint.signature_scheme.signs_v1a() {
            return Vec::new();
        }
        load_live_ed25519_keys(
            self.store.as_ref(),
            &endpoint.tenant_id,
            now,
            self.settings.key_overlap,
        )
        .await
        .unwrap_or_else(|error| {
            tracing::error!(endpoint = %endpoint.id, %error, "cannot read the tenant's Ed25519 keys");
            Vec::new()
        })
    }

    /// The transport seam: an endpoint's URL says how its request travels. `listen:<session>`
    /// hands it to the `herald listen` stream of that session on this node; anything else goes
    /// out through the SSRF-guarded HTTP client. Both answer in the same [`OutboundResult`], so
    /// what follows (retries, ordering, attempts, metrics) does not know the difference.
    async fn send(&self, delivery: &ClaimedDelivery, request: OutboundRequest) -> OutboundResult {
        match request.url.strip_prefix(LISTEN_URL_SCHEME) {
            Some(session_id) => {
                let handed = ListenDelivery {
                    delivery_id: delivery.delivery_id.to_string(),
                    event_type: delivery.event.event_type.clone(),
                    attempt_number: delivery.n_attempts + 1,
                    headers: request.headers,
                    body: request.body,
                };
                self.listen
                    .deliver(session_id, handed, request.timeout)
                    .await
            }
            None => self.client.send(request).await,
        }
    }
}

/// Counts one attempt: its duration, its outcome, the endpoint's failures and, once delivered,
/// the lag from the event to its delivery.
fn record_metrics(
    delivery: &ClaimedDelivery,
    next: NextStep,
    latency: Duration,
    finished_at: OffsetDateTime,
) {
    metrics::histogram!("herald_attempt_duration_seconds").record(latency.as_secs_f64());
    metrics::counter!("herald_deliveries_total", "outcome" => next.as_str()).increment(1);
    if next == NextStep::Delivered {
        let end_to_end = finished_at - delivery.event.occurred_at.max(delivery.created_at);
        metrics::histogram!("herald_delivery_lag_seconds")
            .record(end_to_end.as_seconds_f64().max(0.0));
    } else {
        metrics::counter!("herald_endpoint_failures_total", "endpoint" => delivery.endpoint.id.to_string())
            .increment(1);
    }
}
