//! Group commit: the writes of one kind waiting on a node share one transaction.
//!
//! PostgreSQL flushes its WAL at every commit, and a publish holds its tenant's row lock until
//! its commit, so writing each request in its own transaction pays round trips and a flush per
//! request, one tenant's publishes one at a time. A [`GroupCommitter`] runs one task that takes
//! every request queued while the previous group was committing and writes them all in one
//! transaction ([`GroupWork::commit`]). Each caller gets the answer it would have got alone.
//!
//! A group that fails as a whole (a request the database rejects) is retried in halves, down to
//! single requests, so one bad request fails only itself. A caller that goes away does not cancel its group: the
//! task finishes it for the others.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;

use deadpool_postgres::Pool;
use futures_util::FutureExt;
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

/// The answers of a commit that may split itself (which makes it recursive, so boxed).
type BoxedAnswers<'a, A> = Pin<Box<dyn Future<Output = Vec<StoreResult<A>>> + Send + 'a>>;

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
    // A panic while committing fails this group's callers, not the committer: every later
    // request would find it gone.
    let answers = AssertUnwindSafe(commit_or_split::<W>(pool, &requests))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            tracing::error!("a group commit panicked; its requests were not written");
            requests
                .iter()
                .map(|_| {
                    Err(StoreError::Backend(
                        "a group commit failed unexpectedly".into(),
                    ))
                })
                .collect()
        });
    for (reply, answer) in replies.into_iter().zip(answers) {
        let _ = reply.send(answer);
    }
}

/// Commits `requests` in one transaction; when that fails as a whole, commits each half on its
/// own, down to single requests, so a request the database rejects fails alone after a few
/// transactions rather than one per request. Halves commit in order, keeping queue order.
fn commit_or_split<'a, W: GroupWork>(
    pool: &'a Pool,
    requests: &'a [W::Request],
) -> BoxedAnswers<'a, W::Answer> {
    Box::pin(async move {
        match W::commit(pool, requests).await {
            Ok(answers) => answers,
            // Alone, each request would have failed the same way.
            Err(error) if requests.len() == 1 || matches!(error, StoreError::Unavailable(_)) => {
                requests.iter().map(|_| Err(error.clone())).collect()
            }
            Err(_) => {
                let (first, second) = requests.split_at(requests.len() / 2);
                let mut answers = commit_or_split::<W>(pool, first).await;
                answers.extend(commit_or_split::<W>(pool, second).await);
                answers
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use deadpool_postgres::{Manager, ManagerConfig};
    use tokio_postgres::NoTls;

    use super::*;

    /// A pool that is never asked for a connection: these kinds of work do not touch it.
    fn unused_pool() -> Pool {
        let manager = Manager::from_config(
            tokio_postgres::Config::new(),
            NoTls,
            ManagerConfig::default(),
        );
        Pool::builder(manager)
            .max_size(1)
            .build()
            .expect("a pool builds without connecting")
    }

    static PICKY_COMMITS: AtomicUsize = AtomicUsize::new(0);

    /// Doubles numbers, and the database "rejects" 13: a transaction holding it fails whole.
    struct Picky;

    impl GroupWork for Picky {
        type Request = u32;
        type Answer = u32;
        const MAX_GROUP_SIZE: usize = 100;

        fn size(_: &u32) -> usize {
            1
        }

        async fn commit(_: &Pool, requests: &[u32]) -> StoreResult<Vec<StoreResult<u32>>> {
            PICKY_COMMITS.fetch_add(1, Ordering::SeqCst);
            if requests.contains(&13) {
                return Err(StoreError::Backend("13 is rejected".into()));
            }
            Ok(requests.iter().map(|n| Ok(n * 2)).collect())
        }
    }

    #[tokio::test]
    async fn a_rejected_request_fails_alone_in_a_few_transactions() {
        let requests: Vec<u32> = (1..=64).collect();
        let answers = commit_or_split::<Picky>(&unused_pool(), &requests).await;
        assert_eq!(answers.len(), 64);
        for (request, answer) in requests.iter().zip(&answers) {
            match answer {
                Ok(doubled) => assert_eq!(*doubled, request * 2),
                Err(_) => assert_eq!(*request, 13, "only 13 fails"),
            }
        }
        assert!(answers[12].is_err());
        // Halving: the whole group, then two halves per level down to 13 alone (six levels).
        let commits = PICKY_COMMITS.load(Ordering::SeqCst);
        assert!(
            commits <= 13,
            "{commits} transactions for one bad request in 64"
        );
    }

    /// Panics on 99, doubles anything else.
    struct Panicky;

    impl GroupWork for Panicky {
        type Request = u32;
        type Answer = u32;
        const MAX_GROUP_SIZE: usize = 1;

        fn size(_: &u32) -> usize {
            1
        }

        async fn commit(_: &Pool, requests: &[u32]) -> StoreResult<Vec<StoreResult<u32>>> {
            assert!(!requests.contains(&99), "99 breaks the commit");
            Ok(requests.iter().map(|n| Ok(n * 2)).collect())
        }
    }

    #[tokio::test]
    async fn a_panicking_group_fails_its_callers_and_the_committer_goes_on() {
        let committer = GroupCommitter::<Panicky>::start(unused_pool());
        assert!(committer.submit(99).await.is_err());
        assert_eq!(
            committer.submit(5).await.expect("the committer still runs"),
            10
        );
    }
}
