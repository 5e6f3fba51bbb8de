//! The writer thread: the one connection that writes, and group commit.
//!
//! Every write is a job sent to one thread. The thread takes every job that queued up meanwhile
//! and runs them all in one transaction, each inside its own savepoint, then commits once. A job
//! that fails is rolled back to its savepoint alone; the others in its group commit as usual.
//!
//! Making a commit durable is a second thread's work: the writer connection commits without
//! syncing (`synchronous = NORMAL`), and the syncer thread `fdatasync`s the WAL file and only then
//! answers the callers of every group committed before the sync began. The writer runs the next
//! group while the disk syncs the last. After a crash the database is a prefix of the commits,
//! and every write that was answered as durable is in it.
//!
//! Readers outside the writer (claims) see commits before they are on disk. What they hand out
//! must be durable first, so the writer numbers its groups and says which was the last to hold
//! a durable write ([`Writer::durable_mark`]), and the syncer says how far it has synced
//! ([`Writer::wait_on_disk`]).

use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::Instant;

use herald_store::{StoreError, StoreResult};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::{Notify, oneshot, watch};

use crate::rows::map_backend;

/// The most jobs in one transaction: enough to amortise the fsync, few enough that a group's
/// transaction stays short and its callers' answers are not held back for long.
const MAX_GROUP: usize = 512;

/// When a write's caller may be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Once the write is on disk: whatever the answer promises (a 202) survives a crash.
    OnDisk,
    /// Once the write is committed, before it is synced. For writes whose loss in a crash only
    /// repeats work (a delivery attempt's record: the delivery is attempted again), so that the
    /// caller need not wait for the disk.
    Committed,
}

impl Durability {
    /// The label of its writes' timings (`herald_sqlite_write_*_seconds`): one per kind of
    /// caller, since each kind waits for something else (the sync, or only the commit).
    fn label(self) -> &'static str {
        match self {
            Durability::OnDisk => "on_disk",
            Durability::Committed => "committed",
        }
    }
}

/// What a job leaves for after the commit: whether its own work failed (so its savepoint must be
/// rolled back), and how to answer its caller once the group's fate is known.
struct Ran {
    failed: bool,
    durability: Durability,
    answer: Answer,
}

/// A job runs in the group's transaction, or is handed the reason there is none.
type Job = Box<dyn for<'t> FnOnce(StoreResult<&'t Transaction<'t>>) -> Ran + Send>;

type Answer = Box<dyn FnOnce(StoreResult<()>) + Send>;

/// The handle the store keeps. When the last clone is dropped the thread ends, and the drop waits
/// for it, so the connection is closed and the database free for a new owner once it returns.
#[derive(Clone)]
pub(crate) struct Writer {
    // Declared before `thread`, so the last sender is gone before the join in `_thread` is waited on.
    jobs: mpsc::Sender<Job>,
    progress: Arc<Progress>,
    _thread: Arc<JoinOnDrop>,
}

/// How far the groups are committed and synced, by group number (the first group is 1).
struct Progress {
    /// The last group that held a durable write, set before that group commits: a reader that
    /// saw any of its writes finds its number (or a later one) here afterwards.
    durable_begun: AtomicU64,
    /// The last group on disk, and whether the sync that put it there succeeded.
    synced: watch::Sender<Synced>,
    /// Woken when a group of durable writes has committed (the dispatcher's wakeup, once set).
    at_commit: OnceLock<Arc<Notify>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Synced {
    through: u64,
    failed: bool,
}

struct JoinOnDrop(Option<std::thread::JoinHandle<()>>);

impl Drop for JoinOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take()
            && handle.thread().id() != std::thread::current().id()
        {
            let _ = handle.join();
        }
    }
}

impl Writer {
    /// Moves `connection` (of the database whose WAL file is `wal_path`) to a new thread that owns
    /// it from now on, and starts its syncer. `keep_alive` is held until the connection is closed
    /// (the process lock file, so that a new owner of the database never overlaps this one).
    pub(crate) fn start<K: Send + 'static>(
        connection: Connection,
        wal_path: PathBuf,
        keep_alive: K,
    ) -> StoreResult<Self> {
        // Durability is the syncer's job (see the module comment).
        connection
            .execute_batch("PRAGMA synchronous = NORMAL")
            .map_err(map_backend)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let (committed, to_sync) = mpsc::channel::<(u64, Vec<Answer>)>();
        let progress = Arc::new(Progress {
            durable_begun: AtomicU64::new(0),
            synced: watch::Sender::new(Synced::default()),
            at_commit: OnceLock::new(),
        });
        let start_failed = |error: std::io::Error| {
            StoreError::Backend(format!("cannot start the writer: {error}"))
        };
        let syncer_progress = Arc::clone(&progress);
        let syncer = std::thread::Builder::new()
            .name("herald-sqlite-sync".into())
            .spawn(move || run_syncs(&wal_path, &to_sync, &syncer_progress.synced))
            .map_err(start_failed)?;
        let writer_progress = Arc::clone(&progress);
        let thread = std::thread::Builder::new()
            .name("herald-sqlite-writer".into())
            .spawn(move || {
                let mut connection = connection;
                run_jobs(
                    &mut connection,
                    &queue,
                    &writer_progress.durable_begun,
                    &mut |group, answers| {
                        if let Some(wakeup) = writer_progress.at_commit.get() {
                            wakeup.notify_one();
                        }
                        if let Err(unsent) = committed.send((group, answers)) {
                            fail_all(unsent.0.1, "the syncer has stopped");
                        }
                    },
                );
                drop(committed);
                let _ = syncer.join();
                drop(connection);
                drop(keep_alive);
            })
            .map_err(start_failed)?;
        Ok(Writer {
            jobs,
            progress,
            _thread: Arc::new(JoinOnDrop(Some(thread))),
        })
    }

    /// Wakes `wakeup` whenever a group holding a durable write (a publish, say) has committed,
    /// before it is synced. Set once; later calls change nothing.
    pub(crate) fn wake_at_commit(&self, wakeup: Arc<Notify>) {
        let _ = self.progress.at_commit.set(wakeup);
    }

    /// The group a reader must see on disk before it hands out what it has read: taken after
    /// the reads, it covers every durable write they could have seen.
    pub(crate) fn durable_mark(&self) -> u64 {
        self.progress.durable_begun.load(AtomicOrdering::Acquire)
    }

    /// Waits until every group up to `mark` is on disk (at once if it is already).
    pub(crate) async fn wait_on_disk(&self, mark: u64) -> StoreResult<()> {
        let mut synced = self.progress.synced.subscribe();
        let reached = synced
            .wait_for(|synced| synced.through >= mark)
            .await
            .map(|synced| *synced)
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        if reached.failed {
            return Err(StoreError::Backend(
                "the writes read could not be made durable".into(),
            ));
        }
        Ok(())
    }

    /// Runs `work` in a write transaction and answers as `durability` says.
    pub(crate) async fn write<T, F>(&self, durability: Durability, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        let submitted = Instant::now();
        let (job, answer) = job(durability, move |transaction: &Transaction<'_>| {
            // How long the write waited for the writer: the groups ahead of it in the queue.
            metrics::histogram!("herald_sqlite_write_queue_seconds", "durability" => durability.label())
                .record(submitted.elapsed().as_secs_f64());
            work(transaction)
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        // A closed channel without an answer means the job panicked: it was rolled back.
        let answered = answer
            .await
            .map_err(|_| StoreError::Backend("a write failed unexpectedly".into()))?;
        // From submission to answer: the queue, its own group, and the sync if it waits for one.
        metrics::histogram!("herald_sqlite_write_seconds", "durability" => durability.label())
            .record(submitted.elapsed().as_secs_f64());
        answered
    }
}

/// Wraps `work` as a job, with the channel its caller's answer comes back on.
fn job<T, F>(durability: Durability, work: F) -> (Job, oneshot::Receiver<StoreResult<T>>)
where
    T: Send + 'static,
    F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
{
    let (reply, answer) = oneshot::channel::<StoreResult<T>>();
    let job: Job = Box::new(move |transaction| match transaction.and_then(work) {
        Ok(value) => Ran {
            failed: false,
            durability,
            answer: Box::new(move |committed| {
                let _ = reply.send(committed.map(|()| value));
            }),
        },
        Err(error) => Ran {
            failed: true,
            durability,
            answer: Box::new(move |_| {
                let _ = reply.send(Err(error));
            }),
        },
    });
    (job, answer)
}

fn fail_all(answers: Vec<Answer>, reason: &str) {
    for answer in answers {
        answer(Err(StoreError::Backend(reason.to_owned())));
    }
}

/// Syncs the WAL file for every batch of committed groups that queued up meanwhile, then
/// answers their callers and says how far the disk is, until the writer is gone.
fn run_syncs(
    wal_path: &Path,
    to_sync: &mpsc::Receiver<(u64, Vec<Answer>)>,
    synced: &watch::Sender<Synced>,
) {
    let mut wal: Option<File> = None;
    while let Ok((mut through, mut waiting)) = to_sync.recv() {
        while let Ok((group, more)) = to_sync.try_recv() {
            waiting.extend(more);
            through = group;
        }
        let outcome = sync_wal(&mut wal, wal_path);
        synced.send_replace(Synced {
            through,
            failed: outcome.is_err(),
        });
        match outcome {
            Ok(()) => waiting.into_iter().for_each(|answer| answer(Ok(()))),
            Err(error) => {
                tracing::error!(%error, "could not sync the WAL file");
                fail_all(waiting, "the write could not be made durable");
            }
        }
    }
}

fn sync_wal(wal: &mut Option<File>, wal_path: &Path) -> std::io::Result<()> {
    if wal.is_none() {
        match File::open(wal_path) {
            Ok(file) => *wal = Some(file),
            // No WAL file means nothing was ever committed to one: nothing to sync.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        }
    }
    match wal {
        // fdatasync through any descriptor flushes the file's pages, whoever wrote them.
        Some(file) => file.sync_data(),
        None => Ok(()),
    }
}

/// Runs groups until every sender is gone, numbering them from 1. A group that held a durable
/// write sets `durable_begun` to its number before it commits, and its answers (none if its
/// commit failed: the syncer must still hear of its number) go to `durable`. Returns how many
/// transactions that took.
fn run_jobs(
    connection: &mut Connection,
    queue: &mpsc::Receiver<Job>,
    durable_begun: &AtomicU64,
    durable: &mut dyn FnMut(u64, Vec<Answer>),
) -> usize {
    let mut n_groups = 0;
    while let Ok(first) = queue.recv() {
        let mut group = Vec::with_capacity(16);
        group.push(first);
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        metrics::histogram!("herald_sqlite_group_size").record(group.len() as f64);
        n_groups += 1;
        let number = u64::try_from(n_groups).unwrap_or(u64::MAX);
        let waiting = run_group(connection, group, &|| {
            durable_begun.store(number, AtomicOrdering::Release);
        });
        if let Some(answers) = waiting {
            durable(number, answers);
        }
    }
    n_groups
}

/// One transaction for the whole group. Jobs that failed, or whose group failed, are answered at
/// once, and so are the jobs that need only the commit. If the group holds a durable write,
/// `before_durable_commit` runs just before the commit, and the answers that wait for the disk
/// are returned (none if the commit failed); `None` if nothing in it waits for the disk.
fn run_group(
    connection: &mut Connection,
    group: Vec<Job>,
    before_durable_commit: &dyn Fn(),
) -> Option<Vec<Answer>> {
    let transaction = match connection.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(transaction) => transaction,
        Err(error) => {
            let message = error.to_string();
            tracing::warn!(%message, "could not begin a write transaction");
            for job in group {
                (job(Err(StoreError::Unavailable(message.clone()))).answer)(Ok(()));
            }
            return None;
        }
    };
    let mut answers = Vec::new();
    let mut answers_at_commit = Vec::with_capacity(group.len());
    let mut broken = None;
    for job in group {
        if broken.is_none()
            && let Err(error) = run_cached(&transaction, "SAVEPOINT herald_job")
        {
            broken = Some(map_backend(error));
        }
        if let Some(error) = &broken {
            // The transaction is unusable: the job does not run, and says why.
            (job(Err(StoreError::Backend(error.to_string()))).answer)(Ok(()));
            continue;
        }
        let ran = catch_unwind(AssertUnwindSafe(|| job(Ok(&transaction))));
        let rolled_back = match &ran {
            Ok(ran) if !ran.failed => run_cached(&transaction, "RELEASE herald_job"),
            _ => run_cached(&transaction, "ROLLBACK TO herald_job")
                .and_then(|()| run_cached(&transaction, "RELEASE herald_job")),
        };
        if let Err(error) = rolled_back {
            broken = Some(map_backend(error));
        }
        match ran {
            // A failed job's answer is its error, whatever becomes of the group.
            Ok(ran) if ran.failed => (ran.answer)(Ok(())),
            Ok(ran) => match ran.durability {
                Durability::Committed => answers_at_commit.push(ran.answer),
                Durability::OnDisk => answers.push(ran.answer),
            },
            Err(_) => tracing::error!("a write job panicked; its changes were rolled back"),
        }
    }
    let holds_durable_writes = !answers.is_empty();
    let committed = match broken {
        Some(error) => {
            drop(transaction);
            Err(error)
        }
        None => {
            if holds_durable_writes {
                before_durable_commit();
            }
            transaction.commit().map_err(map_backend)
        }
    };
    match committed {
        Ok(()) => {
            answers_at_commit
                .into_iter()
                .for_each(|answer| answer(Ok(())));
            holds_durable_writes.then_some(answers)
        }
        Err(error) => {
            tracing::warn!(%error, "a write transaction failed");
            fail_all(answers, &error.to_string());
            fail_all(answers_at_commit, &error.to_string());
            holds_durable_writes.then(Vec::new)
        }
    }
}

/// Runs one statement without arguments through the statement cache: these run for every job,
/// and parsing them each time would cost more than running them.
fn run_cached(connection: &Connection, sql: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.execute([])?;
    Ok(())
}

#[cfg(test)]
mod tests;
