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

fn answer_all(answers: Vec<Answer>) {
    answers.into_iter().for_each(|answer| answer(Ok(())));
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
    answer_all(run_group(
        &mut connection,
        vec![first, failing, panicking, last],
        true,
    ));

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
    assert!(run_group(&mut connection, vec![fine, dangling], true).is_empty());
    assert!(fine_answer.blocking_recv().expect("answered").is_err());
    assert!(dangling_answer.blocking_recv().expect("answered").is_err());
    assert_eq!(rows(&connection), Vec::<i64>::new());
}

#[test]
fn a_write_that_need_not_be_durable_is_answered_at_commit() {
    let mut connection = connection();
    let (on_disk, on_disk_answer) = job(Durability::OnDisk, insert(1));
    let (committed, mut committed_answer) = job(Durability::Committed, insert(2));
    let waiting_for_sync = run_group(&mut connection, vec![on_disk, committed], true);
    assert_eq!(
        committed_answer.try_recv().ok().and_then(Result::ok),
        Some(2)
    );
    assert_eq!(
        waiting_for_sync.len(),
        1,
        "only the durable write waits for the sync"
    );
    answer_all(waiting_for_sync);
    assert_eq!(
        on_disk_answer.blocking_recv().expect("answered").ok(),
        Some(1)
    );
}

#[test]
fn a_claim_waits_for_the_disk_only_when_it_may_have_read_unsynced_writes() {
    let read = |transaction: &Transaction<'_>| {
        transaction
            .query_row("SELECT COUNT(*) FROM t", [], |row| row.get::<_, i64>(0))
            .map_err(map_backend)
    };
    let mut connection = connection();
    // Everything earlier on disk, nothing durable before it in the group: answered at commit.
    let (claim, mut claim_answer) = job(Durability::OnceWhatItReadIsDurable, read);
    let (publish, _publish_answer) = job(Durability::OnDisk, insert(1));
    // After a durable write in the same group: waits for the sync.
    let (late_claim, mut late_claim_answer) = job(Durability::OnceWhatItReadIsDurable, read);
    let waiting = run_group(&mut connection, vec![claim, publish, late_claim], true);
    assert_eq!(claim_answer.try_recv().ok().and_then(Result::ok), Some(0));
    assert!(
        late_claim_answer.try_recv().is_err(),
        "must wait for the sync"
    );
    assert_eq!(waiting.len(), 2);
    answer_all(waiting);
    assert_eq!(
        late_claim_answer.blocking_recv().expect("answered").ok(),
        Some(1)
    );

    // An earlier group not yet on disk: even the first claim waits.
    let (claim, mut claim_answer) = job(Durability::OnceWhatItReadIsDurable, read);
    let waiting = run_group(&mut connection, vec![claim], false);
    assert!(claim_answer.try_recv().is_err(), "must wait for the sync");
    assert_eq!(waiting.len(), 1);
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
    let n_groups = run_jobs(
        &mut connection,
        &queue,
        &mut |answers| {
            committed.push(answers.len());
            answer_all(answers);
        },
        &|| true,
    );
    assert_eq!(n_groups, 1);
    assert_eq!(committed, vec![5], "one durable batch for all five");
    for (n, answer) in (1..=5).zip(answers) {
        assert_eq!(answer.blocking_recv().expect("answered").ok(), Some(n));
    }
    assert_eq!(rows(&connection), vec![1, 2, 3, 4, 5]);
}
