//! Records blocking decisions off the request path: evaluations hand their record to a task that
//! writes them in batches, so the caller waiting on an operation never waits on an fsync. Reading
//! the decisions first flushes what is queued, so a caller always sees its own decisions.

use std::sync::Arc;

use herald_store::Store;
use herald_store::models::DecisionRecord;
use tokio::sync::{mpsc, oneshot};

/// The most decisions written in one transaction.
const BATCH: usize = 256;

enum Message {
    Record(Box<DecisionRecord>),
    Flush(oneshot::Sender<()>),
}

#[derive(Debug, Clone)]
pub struct DecisionRecorder {
    sender: mpsc::UnboundedSender<Message>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Record(record) => write!(formatter, "Record({})", record.id),
            Message::Flush(_) => formatter.write_str("Flush"),
        }
    }
}

impl DecisionRecorder {
    /// Starts the writing task; it ends when the last recorder handle is dropped, after writing
    /// what is queued.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut batch = Vec::new();
                let mut flushes = Vec::new();
                let mut next = Some(first);
                while let Some(message) = next.take() {
                    match message {
                        Message::Record(record) => batch.push(*record),
                        Message::Flush(done) => flushes.push(done),
                    }
                    if batch.len() < BATCH {
                        next = receiver.try_recv().ok();
                    }
                }
                if !batch.is_empty()
                    && let Err(error) = store.record_decisions(batch).await
                {
                    tracing::error!(%error, "blocking decisions could not be recorded");
                }
                for done in flushes {
                    let _ = done.send(());
                }
            }
        });
        DecisionRecorder { sender }
    }

    pub fn record(&self, record: DecisionRecord) {
        if self.sender.send(Message::Record(Box::new(record))).is_err() {
            tracing::error!("the decision recorder has stopped; a decision was not recorded");
        }
    }

    /// Waits until every decision recorded before this call is written.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.sender.send(Message::Flush(done)).is_ok() {
            let _ = written.await;
        }
    }
}
