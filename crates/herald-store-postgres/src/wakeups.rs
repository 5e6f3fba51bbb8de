//! Cross-node wakeups with `LISTEN`/`NOTIFY`.
//!
//! Every write that changes when delivery work is due sends `NOTIFY herald_deliveries` inside its
//! own transaction, so the notification goes out exactly when the change commits and never for a
//! change that rolled back. A [`WakeupListener`] keeps one dedicated connection (outside the pool:
//! `LISTEN` belongs to a session, and the connection must be read continuously) and turns each
//! notification into a [`Notify`] permit for the dispatcher. Permits coalesce, so a burst of
//! publishes wakes a sleeping dispatcher once; an idle cluster exchanges nothing at all.
//!
//! A notification sent while the listener was disconnected is lost. After every (re)connection the
//! listener therefore wakes the dispatcher once, which then looks at the database itself.
//!
//! The same connection listens on `herald_changes`, where changes that node-local caches must
//! notice are announced (`hooks:<tenant>`, see `hooks.rs`); each becomes a [`ChangeNotice`] for
//! the node's handler. Losing the connection is [`ChangeNotice::ListenerDown`] at once (the
//! node's caches stop trusting themselves), and getting it back [`ChangeNotice::ListenerUp`].
//! TCP keepalives on the connection make a silently dead one (a peer gone without a FIN) count as
//! lost within about a minute instead of the kernel's two hours.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use herald_store::{ChangeHandler, ChangeNotice, StoreError, StoreResult};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Config, NoTls};

use crate::rows::map_backend;

/// The channel every node listens on.
pub(crate) const CHANNEL: &str = "herald_deliveries";

/// The channel of changes that caches must notice.
pub(crate) const CHANGES_CHANNEL: &str = "herald_changes";

/// The statement that announces a change in due work; sent inside the changing transaction. A
/// query rather than `NOTIFY`, so that it can be prepared and sent in a pipeline.
pub(crate) const NOTIFY_STATEMENT: &str = "SELECT pg_notify('herald_deliveries', '')";

/// The longest wait between reconnection attempts after the listening connection was lost.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(30);

/// Feeds a [`Notify`] from `NOTIFY herald_deliveries` until dropped.
#[derive(Debug)]
pub struct WakeupListener {
    task: JoinHandle<()>,
}

impl Drop for WakeupListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WakeupListener {
    /// Connects, runs `LISTEN`, and returns once notifications are being received: a change
    /// committed after this returns is sure to wake `wakeup`.
    pub(crate) async fn start(
        config: Config,
        wakeup: Arc<Notify>,
        on_change: ChangeHandler,
    ) -> StoreResult<Self> {
        let mut config = config;
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3);
        let (ready_sender, ready) = oneshot::channel();
        let task = tokio::spawn(listen_forever(config, wakeup, on_change, ready_sender));
        match ready.await {
            Ok(Ok(())) => Ok(WakeupListener { task }),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(StoreError::Backend(
                "the wakeup listener stopped before it was listening".into(),
            )),
        }
    }
}

/// Listens, reconnecting with a growing delay whenever the connection is lost. The first
/// connection's failure is reported to the caller instead, so a wrong URL is seen at start.
async fn listen_forever(
    config: Config,
    wakeup: Arc<Notify>,
    on_change: ChangeHandler,
    ready: oneshot::Sender<StoreResult<()>>,
) {
    let mut ready = Some(ready);
    let mut delay = Duration::from_millis(250);
    loop {
        let outcome = listen_once(&config, &wakeup, &on_change, &mut ready).await;
        if let Some(ready) = ready.take() {
            // Never got as far as listening: the caller decides what to do.
            let _ = ready.send(outcome.and(Err(StoreError::Unavailable(
                "the wakeup connection closed at once".into(),
            ))));
            return;
        }
        if matches!(outcome, Ok(true)) {
            on_change(ChangeNotice::ListenerDown);
        }
        match outcome {
            Ok(listened) => {
                if listened {
                    delay = Duration::from_millis(250);
                }
                tracing::warn!("the PostgreSQL wakeup connection closed; reconnecting");
            }
            Err(error) => {
                tracing::warn!(%error, "the PostgreSQL wakeup connection failed; reconnecting")
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RECONNECT_DELAY);
    }
}

/// One connection's life: `LISTEN`, then forward notifications until it ends. Returns whether it
/// got as far as listening.
async fn listen_once(
    config: &Config,
    wakeup: &Notify,
    on_change: &ChangeHandler,
    ready: &mut Option<oneshot::Sender<StoreResult<()>>>,
) -> StoreResult<bool> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(map_backend)?;
    {
        // The connection does its I/O only while polled, so it is polled while LISTEN runs too.
        let statement = format!("LISTEN {CHANNEL}; LISTEN {CHANGES_CHANNEL}");
        let listen = client.batch_execute(&statement);
        tokio::pin!(listen);
        loop {
            tokio::select! {
                result = &mut listen => {
                    result.map_err(map_backend)?;
                    break;
                }
                message = poll_fn(|context| connection.poll_message(context)) => match message {
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err(map_backend(error)),
                    None => return Ok(false),
                },
            }
        }
    }
    if let Some(ready) = ready.take() {
        let _ = ready.send(Ok(()));
    } else {
        // Reconnected: whatever was announced while we were away must still be looked at.
        wakeup.notify_one();
        on_change(ChangeNotice::ListenerUp);
    }
    loop {
        match poll_fn(|context| connection.poll_message(context)).await {
            Some(Ok(AsyncMessage::Notification(notification))) => {
                if notification.channel() == CHANNEL {
                    wakeup.notify_one();
                } else if notification.channel() == CHANGES_CHANNEL {
                    on_change(change_notice(notification.payload()));
                }
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                tracing::warn!(error = %map_backend(error), "the PostgreSQL wakeup connection failed");
                return Ok(true);
            }
            // `client` is still held here, so the connection only ends from the server's side.
            None => return Ok(true),
        }
    }
}

/// The notice a `herald_changes` payload announces; one this version does not know is taken as
/// "something may have changed", which is always safe.
fn change_notice(payload: &str) -> ChangeNotice {
    match payload.split_once(':') {
        Some(("hooks", tenant_id)) => ChangeNotice::Hooks {
            tenant_id: tenant_id.to_owned(),
        },
        // Sent by the statements that queue SETs (`ssf.rs`, `ssf_delivery.rs`).
        Some(("ssf", stream_id)) => ChangeNotice::Ssf {
            stream_id: stream_id.to_owned(),
        },
        _ => ChangeNotice::MaybeMissed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_become_notices() {
        for (payload, expected) in [
            (
                "hooks:acme",
                ChangeNotice::Hooks {
                    tenant_id: "acme".to_owned(),
                },
            ),
            (
                "hooks:a:b",
                ChangeNotice::Hooks {
                    tenant_id: "a:b".to_owned(),
                },
            ),
            (
                "ssf:str_1",
                ChangeNotice::Ssf {
                    stream_id: "str_1".to_owned(),
                },
            ),
            ("endpoints:acme", ChangeNotice::MaybeMissed),
            ("", ChangeNotice::MaybeMissed),
        ] {
            assert_eq!(change_notice(payload), expected, "{payload:?}");
        }
    }
}
