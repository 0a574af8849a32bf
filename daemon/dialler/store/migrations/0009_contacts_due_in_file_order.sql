-- Equally due contacts are claimed in file order (line_number), read straight off the index:
-- ties on next_due_at otherwise come out in heap order, which is not the insertion order once
-- the free space map places rows (seen: a list's lines 4-5 dialled before lines 2-3).
DROP INDEX contacts_due_idx;
CREATE INDEX contacts_due_idx ON contacts (campaign_id, next_due_at, line_number)
    WHERE state IN ('pending', 'retry_scheduled', 'callback_scheduled');
DROP INDEX contacts_zone_due_idx;
CREATE INDEX contacts_zone_due_idx ON contacts (campaign_id, zone_key, next_due_at, line_number)
    WHERE state IN ('pending', 'retry_scheduled', 'callback_scheduled');
