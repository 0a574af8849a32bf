-- Contacts of a campaign: CSV import, single add, cancel (dialler/contacts/).

-- name: campaign_for_contacts
-- Whether contacts may be added (not completed, not cancelled), and its name for messages.
SELECT name, state, cancelled_at FROM campaigns WHERE id = $1

-- name: campaign_for_contacts_locked
-- The same, checked again at the end of the adding transaction under a share lock held until
-- its commit: a `campaign cancel` (an UPDATE of this row) either committed before, and we see
-- it and roll back, or waits for our commit and then cancels the contacts we added. Without
-- it they could land, pending, in a campaign cancelled or completed meanwhile. Taken last, so
-- that the daemon's own updates of the row (last_dial_at) wait only for the commit.
SELECT name, state, cancelled_at FROM campaigns WHERE id = $1 FOR SHARE

-- name: create_import_staging
-- One chunk of the file's valid rows at a time is COPYed here first: a temporary table is not
-- WAL-logged and has no index or constraint to maintain, so COPY into it runs at full speed.
-- raw_phone is the number as written, kept (when it differs) for the errors file only;
-- zone_key the zones the number may be in (contacts/zones.py; '' = the campaign's zone).
CREATE TEMPORARY TABLE contacts_import (
    line integer NOT NULL,
    phone text NOT NULL,
    raw_phone text,
    variables text NOT NULL,
    zone_key text NOT NULL
) ON COMMIT DROP

-- name: import_staged
-- Moves the staged chunk into the campaign. Returns the counts and, as one JSON array in line
-- order, the staged rows whose number the campaign already has (for the errors file; a chunk
-- of them at most).
-- ON CONFLICT DO NOTHING finds those with the unique index the INSERT maintains anyway; an
-- anti-join against contacts would scan the whole campaign again for every chunk. It also
-- covers a number another import commits meanwhile (the INSERT waits for that transaction):
-- that is a duplicate in the campaign as well.
-- Numbers on the do-not-call list are imported as cancelled (never dialled, still counted in
-- the campaign) rather than rejected: the operator cannot "fix" them. The check is a
-- correlated EXISTS on the list's key: an index probe per row, or one hash of the list when
-- it is small, never a scan of a big list per chunk.
-- The contacts all get the same next_due_at; the claim breaks the tie by line_number (the
-- last column of contacts_due_idx), so the list is dialled top to bottom. Heap order is not
-- enough: the free space map may place later lines on earlier pages. ORDER BY line keeps the
-- heap close to file order all the same.
WITH inserted AS (
    INSERT INTO contacts (campaign_id, phone_number, variables, line_number, zone_key, state,
                          next_due_at)
    SELECT $1, s.phone, s.variables::json, s.line, s.zone_key,
           CASE WHEN s.suppressed THEN 'cancelled' ELSE 'pending' END,
           CASE WHEN s.suppressed THEN NULL ELSE now() END
    FROM (SELECT st.line, st.phone, st.variables, st.zone_key,
                 EXISTS (SELECT 1 FROM suppressions d WHERE d.phone_number = st.phone)
                     AS suppressed
          FROM contacts_import st) AS s
    ORDER BY s.line
    ON CONFLICT (campaign_id, phone_number) DO NOTHING
    RETURNING line_number, state
)
SELECT (SELECT count(*) FROM inserted) AS imported,
       (SELECT count(*) FROM inserted WHERE state = 'cancelled') AS suppressed,
       (SELECT json_agg(json_build_object('line', s.line, 'phone', s.phone,
                                          'raw_phone', s.raw_phone,
                                          'variables', s.variables::json) ORDER BY s.line)
        FROM contacts_import s
        WHERE NOT EXISTS (SELECT 1 FROM inserted i WHERE i.line_number = s.line)
       )::text AS duplicates

-- name: truncate_import_staging
-- Empties the staging table for the next chunk of the same import (same transaction).
TRUNCATE contacts_import

-- name: add_contact
-- One contact (CLI `contacts add`, API trigger). ON CONFLICT DO NOTHING: a number already in
-- the campaign returns no row, which the caller turns into a clear refusal.
-- A number on the do-not-call list is added as cancelled, as at import.
WITH suppressed AS (SELECT EXISTS (SELECT 1 FROM suppressions WHERE phone_number = $2) AS yes)
INSERT INTO contacts (campaign_id, phone_number, variables, zone_key, state, next_due_at)
SELECT $1, $2, $3::text::json, $4,
       CASE WHEN yes THEN 'cancelled' ELSE 'pending' END,
       CASE WHEN yes THEN NULL ELSE now() END
FROM suppressed
ON CONFLICT (campaign_id, phone_number) DO NOTHING
RETURNING id, state

-- name: contact_by_phone
SELECT id, state FROM contacts WHERE campaign_id = $1 AND phone_number = $2

-- name: cancel_waiting_contact
-- Only a waiting contact is cancelled: the state test in the UPDATE is atomic with the
-- scheduler's claim (which moves it to dialing under a row lock), so a contact cannot be
-- cancelled and dialled at once. next_due_at means nothing outside the waiting states.
UPDATE contacts SET state = 'cancelled', next_due_at = NULL
WHERE campaign_id = $1 AND phone_number = $2
  AND state IN ('pending', 'retry_scheduled', 'callback_scheduled')
RETURNING id
