//! Group commit: the writes of one kind waiting on a node share one transaction.
//!
//! PostgreSQL flushes its WAL at every commit, and a publish holds its tenant's row lock until
//! its commit, so writing each request in its own transaction pays round trips and a flush per
//! request, one tenant's publishes one at a time. A [`GroupCommitter`] runs one task that takes
//! every request queued while the previous group was committing and writes them all in one
//! transaction ([`GroupWork::commit`]). Each caller gets the answer it would have got alone.
//!
//! A group that fails as a whole (a request the database rejects) is retried request by request,
//! so one bad request fails only itself. A caller that goes away does not cancel its group: the
//! task finishes it for the others.

use std::future::Future;

use deadpool_postgres::Pool;
use herald_store::{StoreError, StoreResult};
use tokio::sync::{mpsc, oneshot};

/// One kind of write that can be grouped.
pub(crate) trait GroupWork: 'static {
    type Request: Send + Sync + 'static;
    type Answer: Send + 'static;

    /// A group stops taking queued requests once their [`GroupWork::size`]s add up to this (the
    /// first request is always taken, whatever its size).
    const MAX_GROUP_SIZE: usize;

    fn size(request: &Self::Request) -> usize;

    /// Writes `requests` in one transaction and answers each, in order. An outer error means
    /// nothing was committed; an inner one fails only its request.
    fn commit(
        pool: &Pool,
        requests: &[Self::Request],
    ) -> impl Future<Output = StoreResult<Vec<StoreResult<Self::Answer>>>> + Send;
}

type Reply<W> = oneshot::Sender<StoreResult<<W as GroupWork>::Answer>>;

/// The queue in front of one committer task; the task ends when the committer is dropped.
pub(crate) struct GroupCommitter<W: GroupWork> {
    queue: mpsc::UnboundedSender<(W::Request, Reply<W>)>,
}

impl<W: GroupWork> std::fmt::Debug for GroupCommitter<W> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("GroupCommitter")
            .finish_non_exhaustive()
    }
}

impl<W: GroupWork> GroupCommitter<W> {
    /// Starts the committer task on the current tokio runtime.
    pub(crate) fn start(pool: Pool) -> Self {
        let (queue, queued) = mpsc::unbounded_channel();
        tokio::spawn(run::<W>(pool, queued));
        GroupCommitter { queue }
    }

    /// Writes `request` with the next group and waits until that group has committed.
    pub(crate) async fn submit(&self, request: W::Request) -> StoreResult<W::Answer> {
        let (reply, answer) = oneshot::channel();
        if self.queue.send((request, reply)).is_err() {
            return Err(committer_gone());
        }
        answer.await.unwrap_or_else(|_| Err(committer_gone()))
    }
}

fn committer_gone() -> StoreError {
    StoreError::Unavailable("the group committer has stopped".into())
}

async fn run<W: GroupWork>(
    pool: Pool,
    mut queued: mpsc::UnboundedReceiver<(W::Request, Reply<W>)>,
) {
    while let Some(first) = queued.recv().await {
        let mut size = W::size(&first.0);
        let mut group = vec![first];
        while size < W::MAX_GROUP_SIZE {
            let Ok(job) = queued.try_recv() else { break };
            size += W::size(&job.0);
            group.push(job);
        }
        commit_group::<W>(&pool, group).await;
    }
}

/// Commits `group` and answers every caller in it. Callers that went away no longer need their
/// answers, so failed sends are ignored.
async fn commit_group<W: GroupWork>(pool: &Pool, group: Vec<(W::Request, Reply<W>)>) {
    let (requests, replies): (Vec<W::Request>, Vec<Reply<W>>) = group.into_iter().unzip();
    match W::commit(pool, &requests).await {
        Ok(answers) => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(answer);
            }
        }
        // Alone, each request would have failed the same way.
        Err(error) if requests.len() == 1 || matches!(error, StoreError::Unavailable(_)) => {
            for reply in replies {
                let _ = reply.send(Err(copy_error(&error)));
            }
        }
        Err(_) => {
            for (request, reply) in requests.iter().zip(replies) {
                let answer = W::commit(pool, std::slice::from_ref(request))
                    .await
                    .and_then(|answers| {
                        answers.into_iter().next().unwrap_or_else(|| {
                            Err(StoreError::Backend("a group commit gave no answer".into()))
                        })
                    });
                let _ = reply.send(answer);
            }
        }
    }
}

fn copy_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::Conflict(detail) => StoreError::Conflict(detail.clone()),
        StoreError::NotFound(detail) => StoreError::NotFound(detail.clone()),
        StoreError::Unavailable(detail) => StoreError::Unavailable(detail.clone()),
        StoreError::Backend(detail) => StoreError::Backend(detail.clone()),
    }
}
