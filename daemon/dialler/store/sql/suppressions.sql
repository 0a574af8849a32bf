-- The do-not-call list (dialler/contacts/suppressions.py; CLI `dialler suppress`, API
-- /v1/suppressions). Import, the single-contact add and the claim check the list themselves
-- (contacts.sql, engine.sql).

-- name: add_suppression
-- Adding a number twice keeps its first `added_at`; a reason given again replaces the old one
-- (none given keeps it). `inserted` tells a new entry from one that was there already:
-- xmax = 0 only for a row this statement inserted.
INSERT INTO suppressions (phone_number, reason) VALUES ($1, $2)
ON CONFLICT (phone_number) DO UPDATE
    SET reason = coalesce(EXCLUDED.reason, suppressions.reason)
RETURNING phone_number, reason, added_at, (xmax = 0) AS inserted

-- name: cancel_suppressed_contacts
-- The number's waiting contacts in every campaign, cancelled in the transaction that adds it.
-- Driven from campaigns so that each campaign is one probe of the unique index on
-- (campaign_id, phone_number): contacts has no index on the number alone, and a campaign count
-- is small where a contact count is not. The state test is atomic with the scheduler's claim
-- (FOR UPDATE SKIP LOCKED on waiting contacts): a contact being claimed right now is left to
-- its call, and the claim query's own NOT EXISTS keeps it from ever being dialled again.
-- Contacts in a call now keep their state; their next dial, if any, is never claimed.
UPDATE contacts ct SET state = 'cancelled', next_due_at = NULL
FROM campaigns c
WHERE ct.campaign_id = c.id AND ct.phone_number = $1
  AND ct.state IN ('pending', 'retry_scheduled', 'callback_scheduled')
RETURNING ct.id, ct.campaign_id

-- name: remove_suppression
-- Contacts cancelled while the number was listed stay cancelled: the list stops future
-- dials, it does not resurrect old ones.
DELETE FROM suppressions WHERE phone_number = $1 RETURNING phone_number

-- name: list_suppressions
SELECT phone_number, reason, added_at FROM suppressions ORDER BY added_at, phone_number

-- name: is_suppressed
-- A test call checks the list itself (a campaign's claim does it in claim_contacts).
SELECT EXISTS (SELECT 1 FROM suppressions WHERE phone_number = $1)
