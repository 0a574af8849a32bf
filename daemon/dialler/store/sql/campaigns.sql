-- Bots, campaigns and their lifecycle, the caller-ID pool (dialler.campaigns.repo).

-- name: insert_bot
INSERT INTO bots (name, prompt, pipeline) VALUES ($1, $2, $3) RETURNING id;

-- name: list_bots
SELECT b.id, b.name, b.created_at,
       (SELECT count(*) FROM campaigns c WHERE c.bot_id = b.id) AS campaigns
FROM bots b
ORDER BY b.name;

-- name: bot_names
SELECT name FROM bots ORDER BY name;

-- name: insert_campaign
-- The bot is looked up by name in the same statement; the file was checked against the bots
-- just before, and bots are never deleted, so a name that exists yields its id.
INSERT INTO campaigns (
    name, bot_id, concurrency, window_start, window_end, window_days, timezone, always_on,
    ring_timeout_ms, retry_max_attempts, retry_delay_ms, retry_on_system, retry_on_custom,
    redial_stop_after_ms, redial_short_connect_ms, window_per_contact)
VALUES ($1, (SELECT id FROM bots WHERE name = $2), $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
        $13, $14, $15, $16)
RETURNING id;

-- name: update_campaign
-- `state = $18`: the caller read (and locked) the campaign in that state; never rewrites a
-- campaign that moved on.
UPDATE campaigns SET
    name = $2, bot_id = (SELECT id FROM bots WHERE name = $3), concurrency = $4,
    window_start = $5, window_end = $6, window_days = $7, timezone = $8, always_on = $9,
    ring_timeout_ms = $10, retry_max_attempts = $11, retry_delay_ms = $12,
    retry_on_system = $13, retry_on_custom = $14, redial_stop_after_ms = $15,
    redial_short_connect_ms = $16, window_per_contact = $17
WHERE id = $1 AND state = $18 AND cancelled_at IS NULL
RETURNING id;

-- name: delete_campaign_numbers
DELETE FROM campaign_numbers WHERE campaign_id = $1;

-- name: insert_campaign_numbers
INSERT INTO campaign_numbers (campaign_id, number) SELECT $1, unnest($2::text[]);

-- name: get_campaigns
-- The campaigns of $1 (one or many: `campaign show`, the metrics refresh of every running one).
SELECT c.id, c.name, c.state, c.cancelled_at, c.bot_id, b.name AS bot_name, c.concurrency,
       c.window_start, c.window_end, c.window_days, c.timezone, c.window_per_contact,
       c.always_on, c.ring_timeout_ms,
       c.retry_max_attempts, c.retry_delay_ms, c.retry_on_system, c.retry_on_custom,
       c.redial_stop_after_ms, c.redial_short_connect_ms, c.created_at, c.updated_at,
       c.started_at, c.completed_at, c.last_dial_at,
       ARRAY(SELECT cn.number FROM campaign_numbers cn WHERE cn.campaign_id = c.id
             ORDER BY cn.number) AS numbers
FROM campaigns c LEFT JOIN bots b ON b.id = c.bot_id
WHERE c.id = ANY($1::uuid[]);

-- name: lock_campaign
-- get_campaign, holding the campaign's row until the transaction ends: start, resume and edit
-- check the settings and then change them, and nobody may change them in between.
SELECT c.id, c.name, c.state, c.cancelled_at, c.bot_id, b.name AS bot_name, c.concurrency,
       c.window_start, c.window_end, c.window_days, c.timezone, c.window_per_contact,
       c.always_on, c.ring_timeout_ms,
       c.retry_max_attempts, c.retry_delay_ms, c.retry_on_system, c.retry_on_custom,
       c.redial_stop_after_ms, c.redial_short_connect_ms, c.created_at, c.updated_at,
       c.started_at, c.completed_at, c.last_dial_at,
       ARRAY(SELECT cn.number FROM campaign_numbers cn WHERE cn.campaign_id = c.id
             ORDER BY cn.number) AS numbers
FROM campaigns c LEFT JOIN bots b ON b.id = c.bot_id
WHERE c.id = $1
FOR UPDATE OF c;

-- name: campaign_state
SELECT name, state, cancelled_at FROM campaigns WHERE id = $1;

-- name: list_campaigns
SELECT c.id, c.name, c.state, c.cancelled_at, b.name AS bot_name, c.concurrency,
       c.always_on,
       (SELECT count(*) FROM campaign_numbers cn WHERE cn.campaign_id = c.id) AS numbers,
       c.created_at
FROM campaigns c LEFT JOIN bots b ON b.id = c.bot_id
ORDER BY c.created_at, c.name;

-- name: numbers_enabled
-- The given caller IDs with their enabled flag (a campaign's pool, for the start checks).
SELECT number, enabled FROM numbers WHERE number = ANY($1::text[]);

-- name: has_contacts
SELECT EXISTS (SELECT 1 FROM contacts WHERE campaign_id = $1);

-- name: start_campaign
-- One statement per transition, conditional on the state it leaves: of two operators racing,
-- the second finds no row and is told the state the first one left.
UPDATE campaigns SET state = 'running', started_at = now()
WHERE id = $1 AND state = 'draft' AND cancelled_at IS NULL
RETURNING name;

-- name: pause_campaign
UPDATE campaigns SET state = 'paused'
WHERE id = $1 AND state = 'running' AND cancelled_at IS NULL
RETURNING name;

-- name: resume_campaign
UPDATE campaigns SET state = 'running'
WHERE id = $1 AND state = 'paused' AND cancelled_at IS NULL
RETURNING name;

-- name: cancel_campaign
-- Cancelling is not a state (docs/schema.md): the campaign keeps running or paused until its
-- live calls finish; only the first cancel counts.
UPDATE campaigns SET cancelled_at = now()
WHERE id = $1 AND state <> 'completed' AND cancelled_at IS NULL
RETURNING name, state;

-- name: cancel_waiting_contacts
-- Waiting contacts only: in-flight ones finish their call and are decided by the engine (which
-- sees cancelled_at). The claim takes contacts with FOR UPDATE SKIP LOCKED and re-checks their
-- state, so a contact is either claimed before this or cancelled here, never both.
UPDATE contacts SET state = 'cancelled', next_due_at = NULL
WHERE campaign_id = $1 AND state IN ('pending', 'retry_scheduled', 'callback_scheduled');

-- name: complete_if_idle
-- A cancelled campaign with no call in flight is over at once; otherwise the engine completes
-- it when its last live call ends.
UPDATE campaigns SET state = 'completed', completed_at = now()
WHERE id = $1 AND state <> 'completed'
  AND NOT EXISTS (SELECT 1 FROM contacts
                  WHERE campaign_id = $1 AND state IN ('dialing', 'connected', 'wrapping'))
RETURNING id;

-- name: count_in_flight
SELECT count(*) FROM contacts
WHERE campaign_id = $1 AND state IN ('dialing', 'connected', 'wrapping');

-- name: wake_daemons
-- Delivered at commit: a running daemon re-reads its campaigns at once instead of at its next
-- poll. The payload is the campaign id.
SELECT pg_notify('dialler_wakeup', $1);

-- name: upsert_numbers
-- Mirrors the config's caller IDs. `AND`: a number disabled in the config is disabled here,
-- but `enabled: true` in the config never re-enables one an operator disabled with
-- `dialler number disable` (only `dialler number enable` does). Sorted input and the WHERE
-- keep concurrent syncs from deadlocking or rewriting unchanged rows.
INSERT INTO numbers (number, carrier, enabled)
SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[])
ON CONFLICT (number) DO UPDATE
SET carrier = EXCLUDED.carrier, enabled = numbers.enabled AND EXCLUDED.enabled
WHERE numbers.carrier IS DISTINCT FROM EXCLUDED.carrier
   OR (numbers.enabled AND NOT EXCLUDED.enabled);

-- name: disable_unconfigured_numbers
-- A number that left the config is disabled, not deleted: campaigns and history refer to it.
UPDATE numbers SET enabled = false WHERE enabled AND NOT (number = ANY($1::text[]));

-- name: set_number_enabled
UPDATE numbers SET enabled = $2 WHERE number = $1 RETURNING number;

-- name: campaigns_without_enabled_numbers
-- Live (running or paused, not cancelled) campaigns using this number whose pool has no
-- enabled number left: they cannot dial until one is enabled.
SELECT c.name FROM campaigns c
WHERE c.state IN ('running', 'paused') AND c.cancelled_at IS NULL
  AND EXISTS (SELECT 1 FROM campaign_numbers cn WHERE cn.campaign_id = c.id AND cn.number = $1)
  AND NOT EXISTS (SELECT 1 FROM campaign_numbers cn JOIN numbers n ON n.number = cn.number
                  WHERE cn.campaign_id = c.id AND n.enabled)
ORDER BY c.name;

-- name: campaign_id
-- A campaign reference given as a UUID (commands accept an id or a name).
SELECT id FROM campaigns WHERE id = $1;

-- name: campaign_id_by_name
SELECT id FROM campaigns WHERE name = $1;

-- name: get_bot
-- One bot with its prompt and pipeline (`bot show`, `GET /v1/bots/{name}`).
SELECT b.id, b.name, b.prompt, b.pipeline, b.created_at,
       (SELECT count(*) FROM campaigns c WHERE c.bot_id = b.id) AS campaigns
FROM bots b WHERE b.name = $1;

-- name: update_bot
-- Campaigns refer to a bot by id, so a rename carries them along.
UPDATE bots SET name = $2, prompt = $3, pipeline = $4 WHERE name = $1 RETURNING id;

-- name: swap_campaign_number
-- Replace caller ID $1 by $2 in the pool of every campaign that can still dial (draft,
-- running, paused; not cancelled) and has $1 but not $2 (a pool lists a number once). The
-- campaigns changed, by name.
UPDATE campaign_numbers cn SET number = $2
FROM campaigns c
WHERE cn.campaign_id = c.id AND cn.number = $1
  AND c.state IN ('draft', 'running', 'paused') AND c.cancelled_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM campaign_numbers x
                  WHERE x.campaign_id = cn.campaign_id AND x.number = $2)
RETURNING c.id, c.name;

-- name: running_concurrency
-- What the running campaigns ask of the fleet at most (the guide's "concurrency set higher
-- than available fleet capacity").
SELECT coalesce(sum(concurrency), 0) AS n FROM campaigns
WHERE state = 'running' AND cancelled_at IS NULL;
