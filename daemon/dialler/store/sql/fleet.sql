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

-- name: lock_fleet
-- Claims of every campaign and daemon reserve slots on one shared fleet (and channels on
-- shared carriers): one transaction-scoped lock makes "count free, then reserve" atomic.
SELECT pg_advisory_xact_lock(7234298718234)

-- name: fleet_free
-- Workers in rotation (enabled; a registered one must have heart-beaten recently) with their
-- free slots, the emptiest first; with their AudioSocket address, for an attach that moves a
-- call off its reserved worker.
SELECT w.name, w.capacity - count(s.attempt_id) AS free, w.host, w.port
FROM workers w LEFT JOIN worker_slots s ON s.worker = w.name
WHERE w.enabled
  AND (w.source = 'config' OR w.last_heartbeat_at > now() - make_interval(secs => $1))
GROUP BY w.name, w.capacity, w.host, w.port
HAVING w.capacity - count(s.attempt_id) > 0
ORDER BY free DESC, w.name

-- name: fleet_capacity
SELECT coalesce(sum(w.capacity), 0) AS capacity
FROM workers w
WHERE w.enabled
  AND (w.source = 'config' OR w.last_heartbeat_at > now() - make_interval(secs => $1))

-- name: reserve_slots
INSERT INTO worker_slots (attempt_id, worker)
SELECT * FROM unnest($1::uuid[], $2::text[])

-- name: slot_of_attempt
SELECT s.worker, w.host, w.port, w.enabled,
       (w.source = 'config' OR w.last_heartbeat_at > now() - make_interval(secs => $2)) AS alive
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

-- name: mark_abandoned
-- No worker can take the answered call: the dialplan plays a message and hangs up; the
-- attempt ends `abandoned` when its hang-up arrives.
UPDATE attempts SET disposition = 'abandoned', notes = $2
WHERE id = $1 AND state <> 'final'
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
