-- The callee's own calling window (CONTRACT, "Campaign window per contact"): zone keys.
-- Migration 0004: campaigns.window_per_contact, contacts.zone_key ('' = the campaign's own
-- zone), contacts.state_reason (why a contact was cancelled), contacts_zone_due_idx ON
-- contacts (campaign_id, zone_key, next_due_at) WHERE waiting.

-- name: campaign_zone_window
-- The window a campaign's contacts are judged by, and whether it is read per contact.
SELECT window_start, window_end, window_days, timezone, window_per_contact
FROM campaigns WHERE id = $1

-- name: campaign_zone_keys
-- The distinct zone keys of a campaign's contacts. A skip scan over contacts_zone_due_idx
-- would need waiting states only; this one is for import and start checks, which look at
-- every contact that may still be dialled, so it reads (campaign_id, state) and groups.
SELECT zone_key, count(*)::bigint AS n
FROM contacts
WHERE campaign_id = $1 AND state IN ('pending', 'retry_scheduled', 'callback_scheduled')
GROUP BY zone_key

-- name: waiting_zone_keys
-- The zone keys of a campaign's waiting contacts, for the scheduler's "which keys are open
-- now": a loose index scan of contacts_zone_due_idx (one index probe per distinct key, a
-- handful), not a read of every waiting contact.
WITH RECURSIVE keys AS (
    (SELECT zone_key FROM contacts
     WHERE campaign_id = $1 AND state IN ('pending', 'retry_scheduled', 'callback_scheduled')
     ORDER BY zone_key LIMIT 1)
    UNION ALL
    SELECT (SELECT c.zone_key FROM contacts c
            WHERE c.campaign_id = $1
              AND c.state IN ('pending', 'retry_scheduled', 'callback_scheduled')
              AND c.zone_key > k.zone_key
            ORDER BY c.zone_key LIMIT 1)
    FROM keys k WHERE k.zone_key IS NOT NULL
)
SELECT zone_key FROM keys WHERE zone_key IS NOT NULL

-- name: due_by_zone_key
-- Waiting contacts of each campaign of $1 per zone key, and how many of them are due now
-- (stats: callable now vs waiting for their local window).
SELECT campaign_id, zone_key, count(*)::bigint AS waiting,
       count(*) FILTER (WHERE next_due_at <= now())::bigint AS due
FROM contacts
WHERE campaign_id = ANY($1::uuid[])
  AND state IN ('pending', 'retry_scheduled', 'callback_scheduled')
GROUP BY campaign_id, zone_key

-- name: cancel_never_open
-- Contacts whose zones never share an open instant of the window are cancelled, never left
-- waiting forever; state_reason says why in the call list. Waiting ones only: one in a call
-- finishes it, and its settle then finds no opening.
WITH cancelled AS (
    UPDATE contacts SET state = 'cancelled', next_due_at = NULL,
                        state_reason = 'no_common_window'
    WHERE campaign_id = $1 AND zone_key = ANY($2::text[])
      AND state IN ('pending', 'retry_scheduled', 'callback_scheduled')
    RETURNING zone_key
)
SELECT zone_key, count(*)::bigint AS n FROM cancelled GROUP BY zone_key
