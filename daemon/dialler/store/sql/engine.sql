-- Queries of the dialling engine (scheduler, attempts, recovery). See docs/engine.md.

-- name: register_daemon
INSERT INTO daemons (id, hostname, pid) VALUES ($1, $2, $3)

-- name: heartbeat
UPDATE daemons SET heartbeat_at = now() WHERE id = $1

-- name: unregister_daemon
DELETE FROM daemons WHERE id = $1

-- name: daemons_of_host
-- At start: this host's registered daemons, to find those whose process is gone.
SELECT id, pid FROM daemons WHERE hostname = $1

-- name: mark_daemon_dead
-- A daemon of this host whose process is gone (a crash, kill -9) is dead now, not after its
-- heartbeat ages: stale recovery reconciles its calls at once.
UPDATE daemons SET heartbeat_at = '-infinity' WHERE id = $1

-- name: ping
-- Keeps the LISTEN connection honest: a connection the server dropped fails here.
SELECT 1

-- name: schema_versions
-- The applied migrations (the table is missing on a database never migrated).
SELECT version FROM schema_migrations

-- name: running_campaigns
-- Everything the pacer needs per running campaign, in one round trip per tick.
SELECT c.id, c.name, c.concurrency, c.window_start, c.window_end, c.window_days, c.timezone,
       c.always_on, c.ring_timeout_ms, c.retry_max_attempts, c.retry_delay_ms,
       c.retry_on_system, c.retry_on_custom, c.redial_stop_after_ms, c.redial_short_connect_ms,
       c.window_per_contact
FROM campaigns c
WHERE c.state = 'running' AND c.cancelled_at IS NULL

-- name: campaign_rules
-- The rules an attempt's result is judged by (also for paused or cancelled campaigns: their
-- live calls still end and must be decided).
SELECT c.id, c.state, c.cancelled_at, c.window_start, c.window_end, c.window_days, c.timezone,
       c.retry_max_attempts, c.retry_delay_ms, c.retry_on_system, c.retry_on_custom,
       c.redial_stop_after_ms, c.redial_short_connect_ms, c.ring_timeout_ms,
       c.window_per_contact
FROM campaigns c WHERE c.id = $1

-- name: carriers_in_flight
-- Open attempts per carrier, across campaigns and daemons (partial index on open attempts).
SELECT carrier, count(*) AS n FROM attempts
WHERE state <> 'final' AND carrier IS NOT NULL
GROUP BY carrier

-- name: touch_numbers
UPDATE numbers SET last_used_at = now() WHERE number = ANY($1::text[])

-- name: unclaim
-- The originate was never sent (AMI down between claim and send): as if never claimed.
WITH gone AS (
    DELETE FROM attempts WHERE id = $1 AND state = 'dialing'
    RETURNING contact_id, counts_toward_max
)
UPDATE contacts c
SET state = 'pending', next_due_at = now(), lease_owner = NULL, lease_expires_at = NULL,
    attempts_used = c.attempts_used - gone.counts_toward_max::int
FROM gone WHERE c.id = gone.contact_id

-- name: mark_answered
-- Returns how long after the answer the call was attached, when the attach (FastAGI, racing
-- this write) came first; the attach side reports it otherwise.
WITH a AS (
    UPDATE attempts SET state = 'connected', answered_at = $2::timestamptz,
                        deadline_at = $2::timestamptz + make_interval(secs => $3)
    WHERE id = $1 AND state = 'dialing'
    RETURNING contact_id, extract(epoch FROM attached_at - answered_at)::float8 AS waited
), c AS (
    UPDATE contacts c SET state = 'connected' FROM a WHERE c.id = a.contact_id
)
SELECT waited FROM a

-- name: finalise_attempt
-- The attempt's result and the decision taken on it, written once (state <> 'final' guards
-- against a second finaliser: recovery racing a late event).
UPDATE attempts
SET state = 'final', answered_at = $2, ended_at = $3, sip_code = $4, outcome = $5,
    disposition = $6, duration_ms = $7, next_action = $8, next_at = $9,
    counts_toward_max = counts_toward_max AND $8 <> 'requeue', finalised_at = now()
WHERE id = $1 AND state <> 'final'
RETURNING contact_id, campaign_id

-- name: settle_contact
-- $4: 1 when the attempt was counted at claim but must not be (requeue: our side failed).
-- $5: why the contact ends without a call to come (`no_common_window`), else NULL.
UPDATE contacts
SET state = $2, next_due_at = $3, lease_owner = NULL, lease_expires_at = NULL,
    attempts_used = attempts_used - $4, state_reason = $5
WHERE id = $1

-- name: lock_open_attempt
-- Whoever decides an attempt (its call's end, its worker's result, recovery) locks it first:
-- exactly one of them finalises it. The contact's attempt count comes along (one round trip
-- less per final attempt); the contact row itself is only read, not locked. Its zone key
-- places a retry or callback of a per-contact campaign in the contact's own window.
SELECT a.id, a.contact_id, a.campaign_id, a.state, a.counts_toward_max, a.answered_at,
       a.ended_at, a.duration_ms, a.disposition, a.callback_at, ct.attempts_used, a.attached_at,
       ct.zone_key
FROM attempts a JOIN contacts ct ON ct.id = a.contact_id
WHERE a.id = $1 AND a.state <> 'final'
FOR UPDATE OF a

-- name: mark_wrapping
WITH a AS (
    UPDATE attempts
    SET state = 'wrapping', answered_at = coalesce(answered_at, $2), ended_at = $3,
        duration_ms = $4, outcome = 'answered', sip_code = 200,
        deadline_at = $3::timestamptz + make_interval(secs => $5)
    WHERE id = $1
    RETURNING contact_id
)
UPDATE contacts c SET state = 'wrapping' FROM a WHERE c.id = a.contact_id

-- name: attempt_exists
-- Tells "already final" from "unknown" when lock_open_attempt finds no open attempt.
SELECT EXISTS (SELECT 1 FROM attempts WHERE id = $1)

-- name: store_result
-- The worker's result; the audio frame counts are NULL when it reported none.
UPDATE attempts
SET disposition = $2, callback_at = $3, notes = $4, audio_frames_sent = $5,
    audio_frames_received = $6
WHERE id = $1

-- name: complete_finished_campaigns
-- A running (or cancelled) campaign that is not always-on and has no waiting or in-flight
-- contact left is completed.
UPDATE campaigns c SET state = 'completed', completed_at = now()
WHERE c.state IN ('running', 'paused')
  AND (c.state = 'running' OR c.cancelled_at IS NOT NULL)
  AND (NOT c.always_on OR c.cancelled_at IS NOT NULL)
  AND NOT EXISTS (
      SELECT 1 FROM contacts ct
      WHERE ct.campaign_id = c.id
        AND ct.state IN ('pending', 'retry_scheduled', 'callback_scheduled',
                         'dialing', 'connected', 'wrapping'))
RETURNING c.id, c.name

-- name: stale_attempts
-- Open attempts to reconcile with Asterisk: past their deadline, or owned by a daemon that has
-- stopped heart-beating (crashed), or by no known daemon; and the calls of daemon $2 (the
-- caller) not yet ended — it skips those it follows and reconciles the rest at once (lost by it
-- during a database outage), instead of at a deadline an hour away.
SELECT a.id, a.campaign_id, a.contact_id, a.state, a.daemon_id, a.asterisk, a.dialled_at,
       a.answered_at, a.ended_at, a.deadline_at, c.ring_timeout_ms
FROM attempts a
JOIN campaigns c ON c.id = a.campaign_id
LEFT JOIN daemons d ON d.id = a.daemon_id
WHERE a.state <> 'final'
  AND (a.deadline_at < now()
       OR d.id IS NULL
       OR d.heartbeat_at < now() - make_interval(secs => $1)
       OR (a.daemon_id = $2 AND a.state IN ('dialing', 'connected')))

-- name: adopt_attempt
-- A live call of a dead daemon: this daemon follows it from now on.
UPDATE attempts SET daemon_id = $2, deadline_at = $3 WHERE id = $1 AND state <> 'final'

-- name: extend_deadline
UPDATE attempts SET deadline_at = $2 WHERE id = $1 AND state <> 'final'

-- name: trailing_requeues
-- The contact's latest final attempts that were requeued, in a row (a refused Originate is
-- requeued only so many times: MAX_REQUEUES in engine/engine.py).
SELECT count(*) FROM attempts a
WHERE a.contact_id = $1 AND a.state = 'final' AND a.next_action = 'requeue'
  AND a.attempt_number > coalesce(
      (SELECT max(b.attempt_number) FROM attempts b
       WHERE b.contact_id = $1 AND b.state = 'final' AND b.next_action <> 'requeue'), 0)

-- name: claimable_campaigns
-- The tick's one look at every running campaign (issue 12, many campaigns): those with a
-- contact due now and a place free under their concurrency — the only ones worth a claim —
-- with how many it could take: its free places, or its due contacts if fewer (counted up to
-- the free places only: a campaign of a million due contacts costs no more). A hint read
-- outside the claim (which decides, exactly: suppressions, zones, fleet, carriers, pacing);
-- 1,000 idle or full campaigns cost this statement, not a transaction each. The due predicate
-- is contacts_due_idx's (keep them equal); the in-flight count reads
-- contacts_campaign_state_idx.
SELECT c.id, d.n AS wanted
FROM campaigns c
CROSS JOIN LATERAL (
    SELECT c.concurrency - count(*) AS n FROM contacts ct
    WHERE ct.campaign_id = c.id AND ct.state IN ('dialing', 'connected', 'wrapping')
) f
CROSS JOIN LATERAL (
    SELECT count(*) AS n FROM (
        SELECT 1 FROM contacts ct
        WHERE ct.campaign_id = c.id
          AND ct.state IN ('pending', 'retry_scheduled', 'callback_scheduled')
          AND ct.next_due_at <= now()
        LIMIT greatest(f.n, 0)
    ) due
) d
WHERE c.state = 'running' AND c.cancelled_at IS NULL AND d.n > 0

-- name: lock_campaigns_for_claim
-- Serialises the claimers of a batch of campaigns (across daemons) for the length of the claim
-- transaction, so the in-flight counts read next cannot be raced past `concurrency`: the
-- running ones of $1, locked in id order (two daemons claiming overlapping batches never
-- deadlock), with their concurrency. FOR NO KEY UPDATE, not FOR UPDATE: claimers still exclude
-- each other, but a foreign-key check on the campaign (FOR KEY SHARE: a settle that writes an
-- attempt or contact row it already wrote in its transaction, as the throttling requeue does)
-- does not wait for the claim. With FOR UPDATE it did, while holding the carrier's pacing row
-- the claim waits for next: a deadlock (found by repeating the e2e suite, docs/testing.md).
SELECT id, concurrency FROM campaigns
WHERE id = ANY($1::uuid[]) AND state = 'running' AND cancelled_at IS NULL
ORDER BY id
FOR NO KEY UPDATE

-- name: campaigns_in_flight
-- Each campaign's contacts in a call now (absent: none in flight).
SELECT campaign_id, count(*) AS n FROM contacts
WHERE campaign_id = ANY($1::uuid[]) AND state IN ('dialing', 'connected', 'wrapping')
GROUP BY campaign_id

-- name: campaigns_caller_ids
-- Each campaign's enabled caller IDs, least recently used first.
SELECT cn.campaign_id, n.number, n.carrier
FROM campaign_numbers cn JOIN numbers n ON n.number = cn.number
WHERE cn.campaign_id = ANY($1::uuid[]) AND n.enabled
ORDER BY cn.campaign_id, n.last_used_at NULLS FIRST, n.number

-- name: mark_campaigns_dialled
UPDATE campaigns SET last_dial_at = now() WHERE id = ANY($1::uuid[])

-- name: lock_open_attempts
-- lock_open_attempt for a batch of call ends written in one transaction (group commit): the
-- open ones of $1, locked in id order (two batches never deadlock). The columns are
-- lock_open_attempt's, word for word: keep them so.
SELECT a.id, a.contact_id, a.campaign_id, a.state, a.counts_toward_max, a.answered_at,
       a.ended_at, a.duration_ms, a.disposition, a.callback_at, ct.attempts_used, a.attached_at,
       ct.zone_key
FROM attempts a JOIN contacts ct ON ct.id = a.contact_id
WHERE a.id = ANY($1::uuid[]) AND a.state <> 'final'
ORDER BY a.id
FOR UPDATE OF a

-- name: claim_contacts
-- The claim: for a batch of campaigns in one statement (issue 12: 1,000 campaigns dialled
-- within seconds), campaign $1[i] claims up to $2[i] due contacts and creates one attempt
-- each, leased $4[i] seconds; its dials' caller IDs, carriers and Asterisk servers are $5, $6,
-- $7 from position $8[i] on, one per dial (the engine deals caller IDs round robin and servers
-- least loaded first).
--
-- Which contacts: due ones in due order, then file order (a whole import is due at one
-- instant, and its lines are dialled as listed), never a suppressed number. FOR UPDATE SKIP
-- LOCKED: several daemons claim from one campaign without blocking each other and never take
-- the same contact.
-- * A campaign with one window ($9[i] false) walks contacts_due_idx (partial: waiting states).
-- * A campaign whose window is read per contact ($9[i] true; CONTRACT, "Campaign window per
--   contact") claims only contacts whose zone key is open now: the pairs ($10[j], $11[j]) list
--   its open keys (worked out by the scheduler, one window check per key, domain/zones.py;
--   '' stands for the campaign's own zone). One contacts_zone_due_idx range per open key, each
--   read in due order and stopped after $2[i] rows, then merged: a closed zone's due contacts
--   (a whole national list, at night in its west) are never read. A range's rows past the
--   merge's LIMIT stay locked (not claimed) until commit, which other claimers skip.
-- A callback's dial does not count toward max_attempts. dialled_at is set here: the Originate
-- is sent right after commit, and for recovery an attempt that exists counts as "may have been
-- dialled" (at-most-once).
WITH req AS (
    SELECT * FROM unnest($1::uuid[], $2::int[], $4::float8[], $8::int[], $9::bool[])
        AS r(campaign_id, n, lease, first, zoned)
), open_key AS (
    SELECT * FROM unnest($10::uuid[], $11::text[]) AS k(campaign_id, zone_key)
), due AS (
    SELECT d.id, d.prev_state, d.next_due_at, d.line_number, req.campaign_id, req.lease,
           req.first
    FROM req
    CROSS JOIN LATERAL (
        SELECT ct.id, ct.state AS prev_state, ct.next_due_at, ct.line_number
        FROM contacts ct
        WHERE ct.campaign_id = req.campaign_id
          AND ct.state IN ('pending', 'retry_scheduled', 'callback_scheduled')
          AND ct.next_due_at <= now()
          AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.phone_number = ct.phone_number)
        ORDER BY ct.next_due_at, ct.line_number
        LIMIT req.n
        FOR UPDATE SKIP LOCKED
    ) AS d
    WHERE NOT req.zoned
    UNION ALL
    SELECT z.id, z.prev_state, z.next_due_at, z.line_number, req.campaign_id, req.lease,
           req.first
    FROM req
    CROSS JOIN LATERAL (
        SELECT d.id, d.prev_state, d.next_due_at, d.line_number
        FROM open_key k
        CROSS JOIN LATERAL (
            SELECT ct.id, ct.state AS prev_state, ct.next_due_at, ct.line_number
            FROM contacts ct
            WHERE ct.campaign_id = req.campaign_id
              AND ct.zone_key = k.zone_key
              AND ct.state IN ('pending', 'retry_scheduled', 'callback_scheduled')
              AND ct.next_due_at <= now()
              AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.phone_number = ct.phone_number)
            ORDER BY ct.next_due_at, ct.line_number
            LIMIT req.n
            FOR UPDATE SKIP LOCKED
        ) AS d
        WHERE k.campaign_id = req.campaign_id
        ORDER BY d.next_due_at, d.line_number
        LIMIT req.n
    ) AS z
    WHERE req.zoned
), claimed AS (
    -- Found by key, whatever the planner guesses of `due`'s size (a LIMIT per campaign is
    -- estimated at a tenth of the table: joined, that guess picked a full scan of contacts).
    -- SET reads the row as it was: a callback's dial does not count toward max_attempts.
    UPDATE contacts c
    SET state = 'dialing', lease_owner = $3,
        lease_expires_at = now() + make_interval(
            secs => (SELECT r.lease FROM req r WHERE r.campaign_id = c.campaign_id)),
        attempts_used = c.attempts_used + (c.state <> 'callback_scheduled')::int
    WHERE c.id = ANY (ARRAY(SELECT due.id FROM due))
    RETURNING c.id, c.campaign_id, c.phone_number, c.attempts_used
), numbered AS (
    -- In due order within each campaign: its dials are dealt their caller IDs and servers,
    -- and sent, in that order.
    SELECT claimed.*, due.prev_state, due.lease, due.first,
           row_number() OVER (PARTITION BY claimed.campaign_id
                              ORDER BY due.next_due_at, due.line_number) AS rn
    FROM claimed JOIN due ON due.id = claimed.id
), inserted AS (
    INSERT INTO attempts (id, contact_id, campaign_id, attempt_number, counts_toward_max,
                          caller_id, carrier, asterisk, daemon_id, state, dialled_at,
                          deadline_at)
    SELECT gen_random_uuid(), n.id, n.campaign_id,
           (SELECT coalesce(max(a.attempt_number), 0) + 1
              FROM attempts a WHERE a.contact_id = n.id),
           n.prev_state <> 'callback_scheduled',
           ($5::text[])[n.first + n.rn - 1],
           ($6::text[])[n.first + n.rn - 1],
           ($7::text[])[n.first + n.rn - 1],
           $3, 'dialing', now(), now() + make_interval(secs => n.lease)
    FROM numbered n
    RETURNING id, contact_id, campaign_id, attempt_number, caller_id, carrier, asterisk,
              counts_toward_max
)
SELECT i.id, i.contact_id, i.campaign_id, i.attempt_number, i.caller_id, i.carrier, i.asterisk,
       i.counts_toward_max, n.phone_number, n.attempts_used
FROM inserted i JOIN numbered n ON n.id = i.contact_id
ORDER BY n.first, n.rn
