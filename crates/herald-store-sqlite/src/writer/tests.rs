//! The writer's group commit: savepoints, failed commits and when each kind of write is answered.

use super::*;

fn connection() -> Connection {
    let connection = Connection::open_in_memory().expect("in-memory database");
    connection
        .execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)")
        .expect("table");
    connection
}

fn insert(n: i64) -> impl FnOnce(&Transaction<'_>) -> StoreResult<i64> + Send + 'static {
    move |transaction| {
        transaction
            .execute("INSERT INTO t (n) VALUES (?1)", [n])
            .map_err(map_backend)?;
        Ok(n)
    }
}

fn answer_all(answers: Option<Vec<Answer>>) {
    answers
        .unwrap_or_default()
        .into_iter()
        .for_each(|answer| answer(Ok(())));
}

/// Runs a group, with nothing to do before a durable commit.
fn run(connection: &mut Connection, group: Vec<Job>) -> Option<Vec<Answer>> {
    run_group(connection, group, &|| {})
}

fn rows(connection: &Connection) -> Vec<i64> {
    let mut statement = connection
        .prepare("SELECT n FROM t ORDER BY n")
        .expect("query");
    statement
        .query_map([], |row| row.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[test]
fn a_failing_or_panicking_job_is_rolled_back_alone() {
    let mut connection = connection();
    let (first, first_answer) = job(Durability::OnDisk, insert(1));
    let (failing, failing_answer) = job(Durability::OnDisk, |transaction: &Transaction<'_>| {
        insert(2)(transaction)?;
        Err::<i64, _>(StoreError::Conflict("on purpose".into()))
    });
    let (panicking, panicking_answer) = job(
        Durability::OnDisk,
        |transaction: &Transaction<'_>| -> StoreResult<i64> {
            insert(3)(transaction)?;
            panic!("on purpose")
        },
    );
    let (last, last_answer) = job(Durability::OnDisk, insert(4));
    answer_all(run(&mut connection, vec![first, failing, panicking, last]));

    assert_eq!(
        first_answer.blocking_recv().expect("answered").ok(),
        Some(1)
    );
    assert!(matches!(
        failing_answer.blocking_recv().expect("answered"),
        Err(StoreError::Conflict(_))
    ));
    assert!(
        panicking_answer.blocking_recv().is_err(),
        "a panicked job has no answer"
    );
    assert_eq!(last_answer.blocking_recv().expect("answered").ok(), Some(4));
    assert_eq!(rows(&connection), vec![1, 4]);
}

#[test]
fn a_failed_commit_fails_every_job_of_the_group() {
    let mut connection = connection();
    connection
        .execute_batch(
            "CREATE TABLE child (n INTEGER REFERENCES t(n) DEFERRABLE INITIALLY DEFERRED);
             PRAGMA foreign_keys = ON;",
        )
        .expect("schema");
    let (fine, fine_answer) = job(Durability::OnDisk, insert(1));
    // The deferred foreign key is only checked at commit, so the whole group's commit fails.
    let (dangling, dangling_answer) = job(Durability::OnDisk, |transaction: &Transaction<'_>| {
        transaction
            .execute("INSERT INTO child (n) VALUES (99)", [])
            .map_err(map_backend)?;
        Ok(())
    });
    let waiting = run(&mut connection, vec![fine, dangling]).expect("it held durable writes");
    assert!(
        waiting.is_empty(),
        "nothing waits for the disk, but the syncer still hears of the group"
    );
    assert!(fine_answer.blocking_recv().expect("answered").is_err());
    assert!(dangling_answer.blocking_recv().expect("answered").is_err());
    assert_eq!(rows(&connection), Vec::<i64>::new());
}

#[test]
fn a_write_that_need_not_be_durable_is_answered_at_commit() {
    let mut connection = connection();
    let (on_disk, on_disk_answer) = job(Durability::OnDisk, insert(1));
    let (committed, mut committed_answer) = job(Durability::Committed, insert(2));
    let waiting_for_sync = run(&mut connection, vec![on_disk, committed]);
    assert_eq!(
        committed_answer.try_recv().ok().and_then(Result::ok),
        Some(2)
    );
    assert_eq!(
        waiting_for_sync.as_ref().map(Vec::len),
        Some(1),
        "only the durable write waits for the sync"
    );
    answer_all(waiting_for_sync);
    assert_eq!(
        on_disk_answer.blocking_recv().expect("answered").ok(),
        Some(1)
    );
}

/// A reader that saw a group's writes must find that group's number in `durable_begun`, so the
/// number is set before the commit makes them visible, and only by groups with durable writes.
#[test]
fn a_group_with_durable_writes_is_marked_before_it_commits() {
    let directory = tempfile::tempdir().expect("tempdir");
    let path = directory.path().join("marks.db");
    let mut connection = Connection::open(&path).expect("opened");
    connection
        .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER PRIMARY KEY)")
        .expect("schema");
    let reader = Connection::open(&path).expect("reader");
    let seen_at_mark = std::cell::Cell::new(None);
    let (publish, _publish_answer) = job(Durability::OnDisk, insert(1));
    let waiting = run_group(&mut connection, vec![publish], &|| {
        seen_at_mark.set(Some(rows(&reader).len()));
    });
    assert_eq!(waiting.as_ref().map(Vec::len), Some(1));
    assert_eq!(seen_at_mark.get(), Some(0), "marked before it was visible");
    assert_eq!(rows(&reader), vec![1]);

    let (record, _record_answer) = job(Durability::Committed, insert(2));
    let marked = std::cell::Cell::new(false);
    let waiting = run_group(&mut connection, vec![record], &|| marked.set(true));
    assert!(waiting.is_none(), "nothing in it waits for the disk");
    assert!(!marked.get(), "a group of records is never waited for");
}

/// The whole loop on a real file: a reader's mark after a durable write is reached once the
/// syncer has synced it, and at once when nothing durable was written.
#[tokio::test]
async fn a_reader_waits_for_the_durable_writes_it_may_have_seen() {
    let directory = tempfile::tempdir().expect("tempdir");
    let path = directory.path().join("progress.db");
    let connection = Connection::open(&path).expect("opened");
    connection
        .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER PRIMARY KEY)")
        .expect("schema");
    let writer = Writer::start(connection, path.with_extension("db-wal"), ()).expect("started");
    assert_eq!(writer.durable_mark(), 0);
    writer.wait_on_disk(0).await.expect("nothing to wait for");
    let wakeup = Arc::new(Notify::new());
    writer.wake_at_commit(Arc::clone(&wakeup));
    writer
        .write(Durability::Committed, insert(1))
        .await
        .expect("recorded");
    assert_eq!(writer.durable_mark(), 0, "a record is not waited for");
    writer
        .write(Durability::OnDisk, insert(2))
        .await
        .expect("published");
    let mark = writer.durable_mark();
    assert_eq!(mark, 2, "the second group held the durable write");
    tokio::time::timeout(std::time::Duration::from_secs(10), wakeup.notified())
        .await
        .expect("its commit woke the dispatcher's wakeup");
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        writer.wait_on_disk(mark),
    )
    .await
    .expect("the syncer reports the group within 10 s")
    .expect("on disk");
}

#[test]
fn writes_queued_during_a_commit_share_the_next_transaction() {
    let mut connection = connection();
    let (sender, queue) = mpsc::channel();
    let mut answers = Vec::new();
    for n in 1..=5 {
        let (job, answer) = job(Durability::OnDisk, insert(n));
        sender.send(job).expect("queued");
        answers.push(answer);
    }
    drop(sender);
    let mut committed = Vec::new();
    let durable_begun = AtomicU64::new(0);
    let n_groups = run_jobs(
        &mut connection,
        &queue,
        &durable_begun,
        &mut |group, answers| {
            committed.push((group, answers.len()));
            answer_all(Some(answers));
        },
    );
    assert_eq!(n_groups, 1);
    assert_eq!(committed, vec![(1, 5)], "one durable batch for all five");
    assert_eq!(durable_begun.load(AtomicOrdering::Acquire), 1);
    for (n, answer) in (1..=5).zip(answers) {
        assert_eq!(answer.blocking_recv().expect("answered").ok(), Some(n));
    }
    assert_eq!(rows(&connection), vec![1, 2, 3, 4, 5]);
}
