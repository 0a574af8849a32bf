-- The callee's own calling window (CONTRACT "Campaign window per contact"): a campaign may
-- read its window on each contact's clocks; a contact carries the zones its number may be in
-- as one key shared by many contacts, so due-ness is computed per key, not per row.
ALTER TABLE campaigns ADD COLUMN window_per_contact boolean NOT NULL DEFAULT false;
-- '' = the campaign's own zone (numbers whose zone cannot be told; every contact from before).
ALTER TABLE contacts ADD COLUMN zone_key text NOT NULL DEFAULT '';
-- Why a contact was cancelled without a call: 'no_common_window'.
ALTER TABLE contacts ADD COLUMN state_reason text;
CREATE INDEX contacts_zone_due_idx ON contacts (campaign_id, zone_key, next_due_at)
    WHERE state IN ('pending', 'retry_scheduled', 'callback_scheduled');
