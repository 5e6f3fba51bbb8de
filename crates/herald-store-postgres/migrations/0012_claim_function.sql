-- A claim runs inside PostgreSQL, as one statement: `SELECT * FROM herald_claim(...)` in its own
-- implicit transaction. Done from the client it was seven round trips (begin; the endpoints with
-- due work; per endpoint its lock and count, then its due rows; the lease; the commit), each
-- waiting for a core shared with the load it serves. `claims.rs` explains the rules; these
-- functions are their only implementation on PostgreSQL.
--
-- The functions that read cache one plan per statement (`plan_cache_mode`) and may choose only
-- keyed plans (no sequential scans, hash or merge joins), as the group writes do (`KEYED_PLANS`
-- in statements.rs, which says why): planning each execution was most of a claim's time.

-- An endpoint's claim lock key (the second half of the two-int4 advisory key; the first is
-- 0x48524c44, "HRLD"): 32-bit FNV-1a of its id's UTF-8 bytes, as a signed int4. Earlier versions
-- computed the same key in Rust, so nodes of either version exclude each other.
CREATE FUNCTION herald_endpoint_lock_key(endpoint_id TEXT) RETURNS INTEGER
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    bytes BYTEA := convert_to(endpoint_id, 'UTF8');
    hash BIGINT := 2166136261;
BEGIN
    FOR i IN 0 .. length(bytes) - 1 LOOP
        -- (hash xor byte) < 2^32 times the 25-bit prime stays below 2^57: no bigint overflow.
        hash := ((hash # get_byte(bytes, i)) * 16777619) & 4294967295;
    END LOOP;
    IF hash >= 2147483648 THEN
        hash := hash - 4294967296;
    END IF;
    RETURN hash::INTEGER;
END
$$;

-- The active (enabled, not paused) endpoints that have unfinished deliveries, with when each next
-- has work: its earliest waiting delivery (one probe of `deliveries_waiting` per waiting state)
-- or the earliest expiry of its leases (`deliveries_leased`; a lease that ran out is a dead
-- node's work).
--
-- The endpoints with work are found by skipping through `deliveries_unfinished_by_subject` (a
-- partial index of unfinished deliveries that starts with the endpoint) one endpoint at a time:
-- a probe per endpoint with work, so the many endpoints with nothing to do cost nothing, and
-- neither does the length of any queue. `state IN (...)` must imply the index's condition.
CREATE FUNCTION herald_endpoints_with_work()
RETURNS TABLE (id TEXT, due_at BIGINT, max_concurrency BIGINT, ordering TEXT, rate_limit_per_s BIGINT)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off
SET enable_hashjoin = off SET enable_mergejoin = off AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH RECURSIVE with_work(endpoint_id) AS (
        (SELECT d.endpoint_id FROM deliveries d
         WHERE d.state IN ('pending','scheduled','in_flight')
         ORDER BY d.endpoint_id LIMIT 1)
        UNION ALL
        SELECT (SELECT d.endpoint_id FROM deliveries d
                WHERE d.state IN ('pending','scheduled','in_flight')
                  AND d.endpoint_id > w.endpoint_id
                ORDER BY d.endpoint_id LIMIT 1)
        FROM with_work w WHERE w.endpoint_id IS NOT NULL)
    SELECT e.id,
           (SELECT MIN(due.at) FROM (
               (SELECT d.next_attempt_at AS at FROM deliveries d
                WHERE d.endpoint_id = e.id AND d.state = 'pending'
                ORDER BY d.next_attempt_at LIMIT 1)
               UNION ALL
               (SELECT d.next_attempt_at FROM deliveries d
                WHERE d.endpoint_id = e.id AND d.state = 'scheduled'
                ORDER BY d.next_attempt_at LIMIT 1)
               UNION ALL
               (SELECT MIN(d.lease_until) FROM deliveries d
                WHERE d.endpoint_id = e.id AND d.state = 'in_flight')) AS due),
           e.max_concurrency, e.ordering, e.rate_limit_per_s
    FROM endpoints e
    WHERE e.id IN (SELECT w.endpoint_id FROM with_work w) AND e.enabled AND NOT e.paused;
END
$$;

-- Leases due deliveries until `lease_until_ms`, at most `claim_limit`, and returns them in claim
-- order. `turn` rotates which endpoint goes first. Called by `herald_claim`, which announces and
-- commits the leases.
CREATE FUNCTION herald_lease_due(now_ms BIGINT, claim_limit BIGINT, lease_until_ms BIGINT, turn BIGINT)
RETURNS TABLE (id TEXT, endpoint_id TEXT, tenant_id TEXT, event_seq BIGINT, n_attempts BIGINT,
               created_at BIGINT)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off
SET enable_hashjoin = off SET enable_mergejoin = off AS $$
#variable_conflict use_column
DECLARE
    due_ids TEXT[];
    due_keys INTEGER[];
    due_concurrency BIGINT[];
    due_ordering TEXT[];
    due_rate BIGINT[];
    n_due INTEGER;
    fair_share BIGINT;
    first_visit INTEGER;
    visit_at INTEGER;
    idx INTEGER;
    room BIGINT;
    busy BIGINT;
    wanted BIGINT;
    candidates TEXT[];
    candidate TEXT;
    rate DOUBLE PRECISION;
    bucket_tokens DOUBLE PRECISION;
    bucket_refilled_at BIGINT;
    chosen TEXT[] := '{}';
    postponed_ids TEXT[] := '{}';
    postponed_until BIGINT[] := '{}';
BEGIN
    IF claim_limit <= 0 THEN
        RETURN;
    END IF;
    -- 1. The endpoints due by now, in ascending lock key order (ties by id, byte order).
    SELECT array_agg(due.id ORDER BY due.key, due.id COLLATE "C"),
           array_agg(due.key ORDER BY due.key, due.id COLLATE "C"),
           array_agg(due.max_concurrency ORDER BY due.key, due.id COLLATE "C"),
           array_agg(due.ordering ORDER BY due.key, due.id COLLATE "C"),
           array_agg(due.rate_limit_per_s ORDER BY due.key, due.id COLLATE "C")
      INTO due_ids, due_keys, due_concurrency, due_ordering, due_rate
      FROM (SELECT w.*, herald_endpoint_lock_key(w.id) AS key
            FROM herald_endpoints_with_work() w WHERE w.due_at <= now_ms) AS due;
    n_due := coalesce(array_length(due_ids, 1), 0);
    IF n_due = 0 THEN
        RETURN;
    END IF;
    -- Rules 1 and 2 of herald_store::planner: each endpoint's share of the batch is
    -- ceil(limit / endpoints), and the visits start at the endpoint in turn.
    fair_share := greatest((claim_limit + n_due - 1) / n_due, 1);
    first_visit := (turn % n_due)::INTEGER;

    FOR visit IN 0 .. n_due - 1 LOOP
        room := claim_limit - coalesce(array_length(chosen, 1), 0);
        EXIT WHEN room <= 0;
        visit_at := first_visit + visit;
        idx := visit_at % n_due + 1;
        -- 2. Serialise per endpoint. Locks are waited for only in ascending key order, from the
        -- endpoint in turn to the end of the list; the ones before it, visited after the wrap,
        -- are only tried and skipped when held (another claim is taking their work right now).
        -- A claim thus only waits for a key larger than every key it holds: no deadlock.
        IF visit_at < n_due THEN
            PERFORM pg_advisory_xact_lock(1213353028, due_keys[idx]);
        ELSIF NOT pg_try_advisory_xact_lock(1213353028, due_keys[idx]) THEN
            CONTINUE;
        END IF;
        -- 3. Count the running attempts in a statement after the lock: a volatile function's
        -- statements each take a new snapshot under READ COMMITTED, so this one sees every claim
        -- the previous holder of the lock committed, and no two nodes fill the same free slots.
        SELECT COUNT(*) INTO busy FROM deliveries d
         WHERE d.endpoint_id = due_ids[idx] AND d.state = 'in_flight' AND d.lease_until > now_ms;
        -- Rule 3 (`planner::offer`): free slots, fair share and room; a strict queue's head
        -- only while nothing of it is in flight.
        wanted := least(greatest(greatest(due_concurrency[idx], 1) - busy, 0), fair_share, room);
        CONTINUE WHEN wanted = 0 OR (due_ordering[idx] = 'strict' AND busy > 0);

        -- 4. Read only what fits, locked with SKIP LOCKED: a row another transaction holds is
        -- skipped, never claimed twice (once that one commits, the row is leased).
        IF due_ordering[idx] = 'strict' THEN
            -- The head (the unfinished delivery with the smallest seq) is found without SKIP
            -- LOCKED, so a head held elsewhere still hides what is behind it; then it is
            -- locked, and skipped if held.
            SELECT array_agg(d.id) INTO candidates FROM (
                SELECT h.id FROM deliveries h
                 WHERE h.id = (
                     SELECT head.id FROM (
                         (SELECT q.id, q.event_seq FROM deliveries q
                          WHERE q.endpoint_id = due_ids[idx] AND q.state = 'pending'
                          ORDER BY q.event_seq LIMIT 1)
                         UNION ALL
                         (SELECT q.id, q.event_seq FROM deliveries q
                          WHERE q.endpoint_id = due_ids[idx] AND q.state = 'scheduled'
                          ORDER BY q.event_seq LIMIT 1)
                         UNION ALL
                         (SELECT q.id, q.event_seq FROM deliveries q
                          WHERE q.endpoint_id = due_ids[idx] AND q.state = 'in_flight'
                          ORDER BY q.event_seq LIMIT 1)) AS head
                     ORDER BY head.event_seq LIMIT 1)
                   AND ((h.state IN ('pending','scheduled') AND h.next_attempt_at <= now_ms)
                        OR (h.state = 'in_flight' AND h.lease_until <= now_ms))
                 FOR UPDATE SKIP LOCKED) AS d;
        ELSE
            -- Per waiting state the earliest due, and in-flight rows whose lease ran out, merged
            -- by due time. A subject-ordered endpoint offers only deliveries with no earlier
            -- *unfinished* delivery of their subject (one probe of
            -- `deliveries_unfinished_by_subject` each); `in_flight` counts as unfinished, so
            -- while one node works on a head the next row is a head for nobody. Heads are judged
            -- without SKIP LOCKED, so a head held elsewhere still hides what is behind it.
            SELECT array_agg(d.id ORDER BY d.due_at) INTO candidates FROM (
                WITH pending AS (
                    SELECT q.id, q.next_attempt_at AS due_at FROM deliveries q
                    WHERE q.endpoint_id = due_ids[idx] AND q.state = 'pending'
                      AND q.next_attempt_at <= now_ms
                      AND (due_ordering[idx] <> 'subject' OR q.subject IS NULL OR NOT EXISTS (
                          SELECT 1 FROM deliveries p WHERE p.endpoint_id = q.endpoint_id
                            AND p.subject = q.subject AND p.state IN ('pending','scheduled','in_flight')
                            AND p.event_seq < q.event_seq))
                    ORDER BY q.next_attempt_at LIMIT wanted FOR UPDATE SKIP LOCKED),
                scheduled AS (
                    SELECT q.id, q.next_attempt_at AS due_at FROM deliveries q
                    WHERE q.endpoint_id = due_ids[idx] AND q.state = 'scheduled'
                      AND q.next_attempt_at <= now_ms
                      AND (due_ordering[idx] <> 'subject' OR q.subject IS NULL OR NOT EXISTS (
                          SELECT 1 FROM deliveries p WHERE p.endpoint_id = q.endpoint_id
                            AND p.subject = q.subject AND p.state IN ('pending','scheduled','in_flight')
                            AND p.event_seq < q.event_seq))
                    ORDER BY q.next_attempt_at LIMIT wanted FOR UPDATE SKIP LOCKED),
                lost AS (
                    SELECT q.id, q.lease_until AS due_at FROM deliveries q
                    WHERE q.endpoint_id = due_ids[idx] AND q.state = 'in_flight'
                      AND q.lease_until <= now_ms
                      AND (due_ordering[idx] <> 'subject' OR q.subject IS NULL OR NOT EXISTS (
                          SELECT 1 FROM deliveries p WHERE p.endpoint_id = q.endpoint_id
                            AND p.subject = q.subject AND p.state IN ('pending','scheduled','in_flight')
                            AND p.event_seq < q.event_seq))
                    ORDER BY q.lease_until LIMIT wanted FOR UPDATE SKIP LOCKED)
                SELECT * FROM pending UNION ALL SELECT * FROM scheduled UNION ALL SELECT * FROM lost
                ORDER BY due_at LIMIT wanted) AS d;
        END IF;
        CONTINUE WHEN candidates IS NULL;

        IF due_rate[idx] IS NULL THEN
            chosen := chosen || candidates;
            CONTINUE;
        END IF;
        -- 5. The token bucket (`herald_core::rate::TokenBucket`; rule 5 of the planner), read
        -- and written under the endpoint's lock so the limit holds across nodes. It holds at
        -- most a second's worth of tokens and refills continuously; a delivery held back is not
        -- due again before the next token is there, so no node spins on it meanwhile.
        rate := greatest(due_rate[idx], 1);
        SELECT b.tokens, b.refilled_at INTO bucket_tokens, bucket_refilled_at
          FROM endpoint_rate_buckets b WHERE b.endpoint_id = due_ids[idx];
        IF NOT FOUND THEN
            bucket_tokens := rate;
            bucket_refilled_at := now_ms;
        END IF;
        bucket_tokens := least(
            bucket_tokens + greatest(now_ms - bucket_refilled_at, 0) / 1000.0 * rate, rate);
        bucket_refilled_at := greatest(now_ms, bucket_refilled_at);
        FOREACH candidate IN ARRAY candidates LOOP
            IF bucket_tokens >= 1.0 THEN
                bucket_tokens := bucket_tokens - 1.0;
                chosen := chosen || candidate;
            ELSE
                postponed_ids := postponed_ids || candidate;
                postponed_until := postponed_until || (now_ms + floor((1.0 - bucket_tokens) / rate * 1000.0))::BIGINT;
            END IF;
        END LOOP;
        INSERT INTO endpoint_rate_buckets (endpoint_id, tokens, refilled_at)
        VALUES (due_ids[idx], bucket_tokens, bucket_refilled_at)
        ON CONFLICT (endpoint_id) DO UPDATE SET tokens = EXCLUDED.tokens, refilled_at = EXCLUDED.refilled_at;
    END LOOP;

    IF array_length(postponed_ids, 1) > 0 THEN
        UPDATE deliveries d SET next_attempt_at = held.due_at
          FROM unnest(postponed_ids, postponed_until) AS held(id, due_at)
         WHERE d.id = held.id AND d.state IN ('pending','scheduled');
    END IF;
    IF coalesce(array_length(chosen, 1), 0) = 0 THEN
        RETURN;
    END IF;
    -- 6. Lease.
    RETURN QUERY
    WITH leased AS (
        UPDATE deliveries d SET state = 'in_flight', lease_until = lease_until_ms, updated_at = now_ms
         WHERE d.id = ANY(chosen)
        RETURNING d.id, d.endpoint_id, d.tenant_id, d.event_seq, d.n_attempts, d.created_at)
    SELECT leased.* FROM leased
      JOIN unnest(chosen) WITH ORDINALITY AS claim_order(id, n) ON claim_order.id = leased.id
     ORDER BY claim_order.n;
END
$$;

-- A claim: `SELECT * FROM herald_claim(...)`, alone in its implicit transaction.
CREATE FUNCTION herald_claim(now_ms BIGINT, claim_limit BIGINT, lease_until_ms BIGINT, turn BIGINT)
RETURNS TABLE (id TEXT, endpoint_id TEXT, tenant_id TEXT, event_seq BIGINT, n_attempts BIGINT,
               created_at BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY SELECT * FROM herald_lease_due(now_ms, claim_limit, lease_until_ms, turn);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- Announce the leases: other nodes wake when they expire, should this one die.
    PERFORM pg_notify('herald_deliveries', '');
    -- A lease need not survive a crash of the database: if it is lost, the delivery is due
    -- again and sent again, which at-least-once delivery allows, and the attempt that follows
    -- commits synchronously, flushing this transaction's WAL before its own. So the claim does
    -- not wait for its WAL to reach the disk (PostgreSQL documentation, "Asynchronous Commit").
    -- Set here, in a function without SET clauses, it holds until the claim's commit.
    PERFORM set_config('synchronous_commit', 'off', true);
END
$$;
