//! The Shared Signals worker: turns each SSF stream's share of its tenant's event log into signed
//! SETs, and pushes push streams' SETs to their receivers (RFC 8935).
//!
//! *Durable by construction:* a publish does nothing for SSF but wake this worker. Each stream
//! keeps a cursor on its tenant's log (`seq`); a step reads the events after it, maps and signs
//! their SETs (`herald_ssf`), and hands them to the store, which queues them and moves the cursor
//! in one transaction, only if the cursor has not moved meanwhile. A crash, a failed step or a
//! node that never ran leaves the events after the cursor to be read again: nothing the log holds
//! is lost, nothing is queued twice.
//!
//! Pushes go through a lease per stream (`Store::lease_ssf_push_heads`): only the head of a
//! stream's queue is pushed, by one worker at a time across nodes, so SETs arrive in order. Each
//! attempt is recorded with its outcome, and the SET is removed (accepted, rejected with a 400, or
//! its retries used up) or rescheduled by Herald's retry schedule with jitter, honouring
//! `Retry-After`.
//!
//! [`SsfWorker::run_once`] is one deterministic step that tests drive; [`SsfWorker::run`] is the
//! background loop `herald serve` starts beside the dispatcher.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_core::clock::Clock;
use herald_core::delivery::{AttemptResult, Decision, decide_after_attempt};
use herald_core::ids::prefixed_id;
use herald_core::retry::{RetrySchedule, parse_retry_after};
use herald_ssf::jws::{JwsAlgorithm, TenantSigningKey};
use herald_ssf::stream::{LoggedEvent, StreamConfig, token_for_stream};
use herald_ssf::subject::SubjectIdentifier;
use herald_store::models::EventFilter;
use herald_store::ssf::{
    SsfPushAttemptRecord, SsfPushHead, SsfPushOutcome, SsfQueuedSet, SsfStreamBehind,
};
use herald_store::{Store, StoreError};
use serde_json::Value;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::http_client::{HttpClient, OutboundRequest, OutboundResult};

/// How the SSF worker paces itself.
#[derive(Debug, Clone)]
pub struct SsfSettings {
    /// Events read from one stream's log per step.
    pub events_per_step: usize,
    /// Streams looked at (followed, or pushed) per step.
    pub streams_per_step: usize,
    /// How long one push may take.
    pub push_timeout: Duration,
    /// How long a stream's push lease lasts: longer than a push, so a live worker keeps it.
    pub push_lease: Duration,
    /// The waits between push attempts of one SET (Herald's default schedule).
    pub retry_schedule: RetrySchedule,
    /// The loop looks at the store at least this often when nothing wakes it: to notice other
    /// nodes' publishes and retries falling due.
    pub idle_poll: Duration,
}

impl Default for SsfSettings {
    fn default() -> Self {
        SsfSettings {
            events_per_step: 200,
            streams_per_step: 64,
            push_timeout: Duration::from_secs(10),
            push_lease: Duration::from_secs(60),
            retry_schedule: RetrySchedule::default(),
            idle_poll: Duration::from_secs(1),
        }
    }
}

/// The signals between the API and the worker on one node.
#[derive(Debug, Default)]
pub struct SsfSignals {
    /// Something may be to do: events published, a stream enabled, a verification queued.
    work: Notify,
    /// SETs were queued: long polls look at their queue again.
    sets_queued: Notify,
}

impl SsfSignals {
    pub fn wake_worker(&self) {
        self.work.notify_one();
    }

    /// Wakes every long poll of this node (each looks at its own queue).
    pub fn announce_sets_queued(&self) {
        self.sets_queued.notify_waiters();
    }

    /// Completes at the next [`SsfSignals::announce_sets_queued`]; `enable` it before reading the
    /// queue so an announcement between the read and the wait is not missed.
    pub fn sets_queued(&self) -> tokio::sync::futures::Notified<'_> {
        self.sets_queued.notified()
    }
}

/// Why a worker step failed. Push attempts themselves never fail: every outcome is recorded.
#[derive(Debug, thiserror::Error)]
pub enum SsfWorkError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SsfStep {
    pub n_sets_queued: usize,
    pub n_pushes: usize,
    /// Streams whose cursor moved (with or without SETs).
    pub n_streams_advanced: usize,
}

impl SsfStep {
    fn did_something(&self) -> bool {
        self.n_sets_queued > 0 || self.n_pushes > 0 || self.n_streams_advanced > 0
    }
}

/// The worker. Cheap to clone: clones share the store, the client and the signals.
#[derive(Debug, Clone)]
pub struct SsfWorker {
    store: Arc<dyn Store>,
    client: HttpClient,
    clock: Arc<dyn Clock>,
    settings: Arc<SsfSettings>,
    signals: Arc<SsfSignals>,
}

impl SsfWorker {
    pub fn new(
        store: Arc<dyn Store>,
        client: HttpClient,
        clock: Arc<dyn Clock>,
        settings: SsfSettings,
        signals: Arc<SsfSignals>,
    ) -> Self {
        SsfWorker {
            store,
            client,
            clock,
            settings: Arc::new(settings),
            signals,
        }
    }

    /// One step: every stream that is behind the log gets its SETs queued (one batch of events
    /// each), then every push stream whose head SET is due gets one push.
    pub async fn run_once(&self) -> Result<SsfStep, SsfWorkError> {
        let mut step = self.follow_log().await?;
        step.n_pushes = self.push_due().await?;
        Ok(step)
    }

    /// The background loop: steps while there is work, then waits to be woken (or the idle poll).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            let busy = match self.run_once().await {
                Ok(step) => step.did_something(),
                Err(error) => {
                    tracing::warn!(%error, "SSF worker step failed");
                    false
                }
            };
            if busy {
                continue;
            }
            tokio::select! {
                () = self.signals.work.notified() => {}
                () = tokio::time::sleep(self.settings.idle_poll) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }

    async fn follow_log(&self) -> Result<SsfStep, SsfWorkError> {
        let mut step = SsfStep::default();
        let behind = self
            .store
            .list_ssf_streams_behind(self.settings.streams_per_step)
            .await?;
        for stream in behind {
            match self.follow_stream(&stream).await? {
                Some(n_queued) => {
                    step.n_streams_advanced += 1;
                    step.n_sets_queued += n_queued;
                }
                None => continue,
            }
        }
        if step.n_sets_queued > 0 {
            self.signals.announce_sets_queued();
        }
        Ok(step)
    }

    /// Queues the SETs of the next batch of events for one stream and moves its cursor; `None`
    /// when the stream could not be advanced (another worker did it, or it cannot be signed for).
    async fn follow_stream(&self, behind: &SsfStreamBehind) -> Result<Option<usize>, SsfWorkError> {
        let stream = &behind.stream;
        let config = match StreamConfig::parse(&stream.config) {
            Ok(config) => config,
            Err(error) => {
                tracing::error!(stream_id = %stream.id, %error, "SSF stream cannot be read; it gets no SETs");
                return Ok(None);
            }
        };
        let events = self
            .store
            .list_events(
                &stream.tenant_id,
                &EventFilter {
                    after_seq: behind.cursor_seq,
                    limit: self.settings.events_per_step,
                    event_type: None,
                    subject: None,
                },
            )
            .await?;
        // Events removed by retention leave a gap: the cursor then moves to the log's end.
        let to_seq = events
            .last()
            .map_or(behind.log_end_seq, |last| last.event.seq);
        let subjects = if config.all_subjects {
            Vec::new()
        } else {
            self.store
                .list_ssf_subjects(&stream.id)
                .await?
                .iter()
                .filter_map(|key| serde_json::from_str::<Value>(key).ok())
                .filter_map(|value| SubjectIdentifier::parse(&value, "").ok())
                .collect()
        };
        let now = self.clock.now();
        let mut tokens = Vec::new();
        for stored in &events {
            // An erased event (GDPR) is not told to anyone any more.
            if stored.erased {
                continue;
            }
            let event = &stored.event;
            let logged = LoggedEvent {
                id: &event.id,
                taxonomy: event.taxonomy.as_str(),
                event_type: &event.event_type,
                subject: event.subject.as_deref(),
                occurred_at_unix: event.occurred_at.unix_timestamp(),
                payload: &event.payload,
            };
            if let Some(token) = token_for_stream(
                &config,
                &subjects,
                &logged,
                now.unix_timestamp(),
                prefixed_id("set"),
            ) {
                tokens.push(token);
            }
        }
        let mut sets = Vec::with_capacity(tokens.len());
        if !tokens.is_empty() {
            let Some(key) = self.signing_key(&stream.tenant_id).await? else {
                tracing::warn!(stream_id = %stream.id, "SSF stream's tenant has no signing key; its SETs wait");
                return Ok(None);
            };
            for token in tokens {
                sets.push(SsfQueuedSet {
                    stream_id: stream.id.clone(),
                    jti: token.jti.clone(),
                    token: key.sign_set(&token.claims()),
                    created_at: now,
                });
            }
        }
        let n_queued = sets.len();
        let advanced = self
            .store
            .advance_ssf_stream(&stream.id, behind.cursor_seq, to_seq, sets)
            .await?;
        Ok(advanced.then_some(n_queued))
    }

    /// The tenant's signing key now: the newest one not retired.
    async fn signing_key(&self, tenant_id: &str) -> Result<Option<TenantSigningKey>, SsfWorkError> {
        let keys = self.store.list_ssf_signing_keys(tenant_id).await?;
        let Some(record) = keys.iter().find(|key| key.retired_at.is_none()) else {
            return Ok(None);
        };
        let Some(algorithm) = JwsAlgorithm::parse(&record.algorithm) else {
            tracing::error!(kid = %record.kid, "SSF signing key has an unknown algorithm");
            return Ok(None);
        };
        match TenantSigningKey::from_private_key_text(
            record.kid.clone(),
            algorithm,
            &record.private_key,
        ) {
            Ok(key) => Ok(Some(key)),
            Err(error) => {
                tracing::error!(kid = %record.kid, %error, "SSF signing key cannot be read");
                Ok(None)
            }
        }
    }

    /// Leases the streams whose head SET is due and pushes each head, concurrently (one slow
    /// receiver does not hold up the others); returns how many pushes were made.
    async fn push_due(&self) -> Result<usize, SsfWorkError> {
        let now = self.clock.now();
        let heads = self
            .store
            .lease_ssf_push_heads(
                now,
                now + self.settings.push_lease,
                self.settings.streams_per_step,
            )
            .await?;
        let mut pushes = JoinSet::new();
        for head in heads {
            let worker = self.clone();
            pushes.spawn(async move { worker.push_head(head).await });
        }
        let mut n_pushes = 0;
        while let Some(joined) = pushes.join_next().await {
            match joined {
                Ok(Ok(pushed)) => n_pushes += usize::from(pushed),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "SSF push not recorded; the stream's lease will expire")
                }
                Err(error) => tracing::error!(%error, "SSF push task failed"),
            }
        }
        Ok(n_pushes)
    }

    /// Pushes one stream's head SET and records what came of it; `false` when the stream is not
    /// a push stream (its SETs are parked for polling instead).
    async fn push_head(&self, head: SsfPushHead) -> Result<bool, SsfWorkError> {
        let config = StreamConfig::parse(&head.stream.config).ok();
        let Some((config, url)) = config.and_then(|config| {
            let url = config.push_endpoint_url.clone()?;
            config.is_push().then_some((config, url))
        }) else {
            self.store.schedule_ssf_queue(&head.stream.id, None).await?;
            return Ok(false);
        };
        // RFC 8935 §2: the SET is the body, as application/secevent+jwt; the answer is JSON.
        let mut headers = vec![
            (
                "content-type".to_owned(),
                "application/secevent+jwt".to_owned(),
            ),
            ("accept".to_owned(), "application/json".to_owned()),
        ];
        if let Some(authorization) = &config.push_authorization_header {
            headers.push(("authorization".to_owned(), authorization.clone()));
        }
        let attempted_at = self.clock.now();
        let result = self
            .client
            .send(OutboundRequest {
                url,
                headers,
                body: Bytes::from(head.set.token.clone()),
                timeout: self.settings.push_timeout,
            })
            .await;
        let finished_at = self.clock.now();
        let n_attempts = head.n_attempts.saturating_add(1);
        let (status_code, error, attempt_result) = match &result {
            OutboundResult::Responded {
                status,
                retry_after,
                body_excerpt,
                ..
            } => {
                let error = match status {
                    200..=299 => None,
                    // RFC 8935 §2.3: a failed delivery is a 400 whose JSON body names the error
                    // (`err`, one of §2.4's codes) and may describe it (`description`).
                    400 => Some(rejection_code(body_excerpt)),
                    other => Some(format!("status {other}")),
                };
                let retry_after = retry_after
                    .as_deref()
                    .and_then(|value| parse_retry_after(value, finished_at));
                (
                    Some(*status),
                    error,
                    AttemptResult::Response {
                        status: *status,
                        retry_after,
                    },
                )
            }
            OutboundResult::Failed { error, .. } => (
                None,
                Some(error.to_string()),
                match error {
                    crate::http_client::OutboundError::Timeout => AttemptResult::TimedOut,
                    _ => AttemptResult::TransportFailed,
                },
            ),
        };
        let outcome = match attempt_result {
            // RFC 8935 §2.3: the receiver refused this SET; sending it again cannot succeed.
            AttemptResult::Response { status: 400, .. } => SsfPushOutcome::Rejected,
            _ => match decide_after_attempt(
                &attempt_result,
                n_attempts,
                &self.settings.retry_schedule,
                &mut rand::thread_rng(),
            ) {
                Decision::Delivered => SsfPushOutcome::Accepted,
                Decision::RetryAfter(wait) => SsfPushOutcome::Retry {
                    next_attempt_at: finished_at + wait,
                },
                Decision::Exhausted | Decision::EndpointGone => SsfPushOutcome::Exhausted,
            },
        };
        match outcome {
            SsfPushOutcome::Rejected => {
                tracing::warn!(stream_id = %head.stream.id, jti = %head.set.jti, err = error.as_deref().unwrap_or_default(), "SSF receiver rejected a SET; it is dropped");
            }
            SsfPushOutcome::Exhausted => {
                tracing::warn!(stream_id = %head.stream.id, jti = %head.set.jti, n_attempts, "SSF push retries used up; the SET is dropped");
            }
            SsfPushOutcome::Accepted | SsfPushOutcome::Retry { .. } => {}
        }
        self.store
            .record_ssf_push_attempt(SsfPushAttemptRecord {
                id: prefixed_id("ssfatt"),
                tenant_id: head.stream.tenant_id.clone(),
                stream_id: head.stream.id.clone(),
                jti: head.set.jti.clone(),
                attempted_at,
                status_code,
                latency_ms: u64::try_from(result.latency().as_millis()).unwrap_or(u64::MAX),
                error,
                outcome,
            })
            .await?;
        Ok(true)
    }
}

/// The RFC 8935 §2.4 error code of a receiver's 400 answer, or a note that it gave none.
fn rejection_code(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|answer| {
            answer
                .get("err")
                .and_then(Value::as_str)
                .map(|code| code.chars().take(100).collect())
        })
        .unwrap_or_else(|| "(no error code)".to_owned())
}
