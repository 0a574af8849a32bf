-- The fleet: workers, and the slots reserved on them per attempt. See docs/fleet.md.

-- name: upsert_config_worker
-- Static workers from the config; a worker that also registers over the API stays `config`.
INSERT INTO workers (name, host, port, capacity, source, enabled)
VALUES ($1, $2, $3, $4, 'config', true)
ON CONFLICT (name) DO UPDATE
SET host = EXCLUDED.host, port = EXCLUDED.port, capacity = EXCLUDED.capacity,
    source = 'config', enabled = true

-- name: register_worker
INSERT INTO workers (name, host, port, capacity, source, last_heartbeat_at, enabled)
VALUES ($1, $2, $3, $4, 'api', now(), true)
ON CONFLICT (name) DO UPDATE
SET host = EXCLUDED.host, port = EXCLUDED.port, capacity = EXCLUDED.capacity,
    last_heartbeat_at = now(), enabled = true

-- name: heartbeat_worker
UPDATE workers SET last_heartbeat_at = now() WHERE name = $1 RETURNING name

-- name: leave_rotation
-- A worker that is stopping leaves rotation at once ('-infinity', as a failed health check): no
-- call is reserved for it any more, and an answered call already reserved for it is attached
-- to another worker (`attach`), so it can close its port without Asterisk's AudioSocket ever
-- failing to connect to it. A registration or a heartbeat brings it back.
UPDATE workers SET last_heartbeat_at = '-infinity' WHERE name = $1 RETURNING name

-- name: config_workers
-- The static workers in rotation, for the daemons' health check.
SELECT name, host, port FROM workers WHERE source = 'config' AND enabled ORDER BY name

-- name: record_health
-- The health check's verdict on static workers: those whose AudioSocket port accepted a
-- connection are heard from now ($1); the others ($2) leave rotation at once ('-infinity': not
-- NULL, which means "never checked"). A heartbeat over the API brings a worker back.
UPDATE workers
SET last_heartbeat_at = CASE WHEN name = ANY($1::text[]) THEN now() ELSE '-infinity' END
WHERE source = 'config' AND (name = ANY($1::text[]) OR name = ANY($2::text[]))

-- name: lock_fleet
-- Claims of every campaign and daemon reserve slots on one shared fleet (and channels on
-- shared carriers): one transaction-scoped lock makes "count free, then reserve" atomic.
SELECT pg_advisory_xact_lock(7234298718234)

-- name: fleet_free
-- Workers in rotation with their free slots. In rotation: enabled, and heard from within the
-- heartbeat timeout: a registered worker by its heartbeats, a static (config) worker by the
-- daemons' health check (`record_health`); a static worker never checked yet (NULL) counts as
-- up until the first check, which every daemon runs at start. With their
-- free slots, the emptiest first; with their AudioSocket address, for an attach that moves a
-- call off its reserved worker.
SELECT w.name, w.capacity - count(s.attempt_id) AS free, w.host, w.port
FROM workers w LEFT JOIN worker_slots s ON s.worker = w.name
WHERE w.enabled
  AND (w.last_heartbeat_at > now() - make_interval(secs => $1)
       OR (w.source = 'config' AND w.last_heartbeat_at IS NULL))
GROUP BY w.name, w.capacity, w.host, w.port
HAVING w.capacity - count(s.attempt_id) > 0
ORDER BY free DESC, w.name

-- name: fleet_capacity
SELECT coalesce(sum(w.capacity), 0) AS capacity
FROM workers w
WHERE w.enabled
  AND (w.last_heartbeat_at > now() - make_interval(secs => $1)
       OR (w.source = 'config' AND w.last_heartbeat_at IS NULL))

-- name: reserve_slots
INSERT INTO worker_slots (attempt_id, worker)
SELECT * FROM unnest($1::uuid[], $2::text[])

-- name: slot_of_attempt
SELECT s.worker, w.host, w.port, w.enabled,
       (w.last_heartbeat_at > now() - make_interval(secs => $2)
        OR (w.source = 'config' AND w.last_heartbeat_at IS NULL)) AS alive
FROM worker_slots s JOIN workers w ON w.name = s.worker
WHERE s.attempt_id = $1

-- name: move_slot
UPDATE worker_slots SET worker = $2 WHERE attempt_id = $1

-- name: mark_attached
WITH s AS (
    UPDATE worker_slots SET attached_at = now() WHERE attempt_id = $1 RETURNING worker
)
UPDATE attempts a SET worker = s.worker, attached_at = now() FROM s WHERE a.id = $1
RETURNING extract(epoch FROM a.attached_at - a.answered_at)::float8 AS waited

-- name: attach
-- The FastAGI attach of an answered call, in one statement (no lock, no worker probe): the
-- slot reserved at claim when its worker is in rotation; else the emptiest other worker in
-- rotation with a free slot (the slot moves, or is taken if the attempt had none); else the
-- call is abandoned ($3: the disposition). In rotation: as `fleet_free`.
-- Returns one row: the chosen worker and its address (NULL: abandoned), the reserved worker,
-- seconds since the answer when the answer was recorded first, whether the attempt row was
-- written, and the abandoned call's campaign. Without the fleet lock, a move racing a claim
-- may give a worker one call over its capacity: the worker refuses it and the dialplan plays
-- the abandon message (docs/fleet.md).
-- The attempt row is written only if no one holds it (SKIP LOCKED): at the answer the engine's
-- `mark_answered` holds it until its commit reaches the disk (longer if it waits for another
-- lock), and the callee must not wait for that. When skipped (`written` false), `attach_late`
-- (a worker chosen) or `mark_abandoned` (none) writes it once Asterisk has its answer.
WITH a AS (
    SELECT id FROM attempts WHERE id = $1
),
slot AS (
    SELECT worker FROM worker_slots WHERE attempt_id = $1
),
live AS (
    SELECT w.name, w.host, w.port, w.capacity
    FROM workers w
    WHERE w.enabled
      AND (w.last_heartbeat_at > now() - make_interval(secs => $2)
           OR (w.source = 'config' AND w.last_heartbeat_at IS NULL))
),
reserved AS (
    SELECT l.name AS worker, l.host, l.port
    FROM slot s JOIN live l ON l.name = s.worker
),
other AS (
    SELECT l.name AS worker, l.host, l.port
    FROM live l LEFT JOIN worker_slots s ON s.worker = l.name
    WHERE EXISTS (SELECT 1 FROM a) AND NOT EXISTS (SELECT 1 FROM reserved)
    GROUP BY l.name, l.host, l.port, l.capacity
    HAVING l.capacity - count(s.attempt_id) > 0
    ORDER BY l.capacity - count(s.attempt_id) DESC, l.name
    LIMIT 1
),
chosen AS (
    SELECT worker, host, port FROM reserved
    UNION ALL
    SELECT worker, host, port FROM other
),
moved AS (
    UPDATE worker_slots s SET worker = c.worker, attached_at = now()
    FROM chosen c WHERE s.attempt_id = $1
    RETURNING s.worker
),
taken AS (
    INSERT INTO worker_slots (attempt_id, worker, attached_at)
    SELECT $1, c.worker, now() FROM chosen c WHERE NOT EXISTS (SELECT 1 FROM slot)
    RETURNING worker
),
attached AS (
    UPDATE attempts t SET worker = c.worker, attached_at = now()
    FROM chosen c
    WHERE t.id = (SELECT id FROM attempts WHERE id = $1 FOR UPDATE SKIP LOCKED)
    RETURNING extract(epoch FROM t.attached_at - t.answered_at)::float8 AS waited
),
abandoned AS (
    UPDATE attempts
    SET disposition = $3,
        notes = 'no worker could take the call (reserved: '
                || coalesce((SELECT worker FROM slot), '-') || ')'
    WHERE id = (SELECT id FROM attempts WHERE id = $1 FOR UPDATE SKIP LOCKED)
      AND state <> 'final' AND NOT EXISTS (SELECT 1 FROM chosen)
    RETURNING campaign_id
)
SELECT c.worker, c.host, c.port,
       (SELECT worker FROM slot) AS reserved,
       (SELECT waited FROM attached) AS waited,
       EXISTS (SELECT 1 FROM attached) OR EXISTS (SELECT 1 FROM abandoned)
       OR NOT EXISTS (SELECT 1 FROM a) AS written,
       (SELECT campaign_id FROM abandoned) AS abandoned_campaign
FROM (SELECT 1) AS one LEFT JOIN chosen c ON true

-- name: attach_late
-- The attempt row's part of an attach that found it held (see `attach`): the worker and the
-- attach time of its slot. Returns seconds since the answer when the answer was recorded.
UPDATE attempts a SET worker = s.worker, attached_at = s.attached_at
FROM worker_slots s
WHERE a.id = $1 AND s.attempt_id = $1 AND a.attached_at IS NULL AND s.attached_at IS NOT NULL
RETURNING extract(epoch FROM a.attached_at - a.answered_at)::float8 AS waited

-- name: mark_abandoned
-- No worker can take the answered call (an unusable address, or the dialplan's `abandon` after
-- a failed AudioSocket connection): the dialplan plays a message and hangs up; the attempt
-- ends `abandoned` when its hang-up arrives. A worker's result already in stays.
UPDATE attempts SET disposition = 'abandoned', notes = $2
WHERE id = $1 AND state <> 'final' AND disposition IS NULL
RETURNING campaign_id

-- name: mark_socket_failed
-- The dialplan's `abandon` (its AudioSocket() failed): the call is `abandoned` only when that
-- came within $3 seconds of the attach — the connection was refused or the worker refused the
-- call at once; later, the worker had the call and broke off mid-call (its result, or the
-- result timeout, decides). A worker's result already in stays.
UPDATE attempts SET disposition = 'abandoned', notes = $2
WHERE id = $1 AND state <> 'final' AND disposition IS NULL
  AND (attached_at IS NULL OR attached_at > now() - make_interval(secs => $3))
RETURNING campaign_id

-- name: disable_unlisted_config_workers
-- A static worker removed from the config leaves rotation (its row stays for the history).
UPDATE workers SET enabled = false
WHERE source = 'config' AND enabled AND NOT (name = ANY($1::text[]))

-- name: release_slot
DELETE FROM worker_slots WHERE attempt_id = $1

-- name: call_context
SELECT a.id AS attempt_id, a.campaign_id, a.caller_id, a.state, c.name AS campaign,
       b.name AS bot, b.prompt, b.pipeline, ct.variables
FROM attempts a
JOIN campaigns c ON c.id = a.campaign_id
JOIN contacts ct ON ct.id = a.contact_id
LEFT JOIN bots b ON b.id = c.bot_id
WHERE a.id = $1

-- name: call_worker
-- The worker an attempt was attached to (NULL until attached); no row: no such attempt. The
-- worker routes check it against the token's bound workers (docs/security.md).
SELECT worker FROM attempts WHERE id = $1
