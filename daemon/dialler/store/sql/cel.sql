-- Asterisk's CEL rows (table asterisk_cel, written by cel_pgsql). See docs/reliability.md.

-- name: call_record
-- One call's record as Asterisk wrote it: its channel's start, answer and hang-up (with the
-- hang-up's JSON `extra`, which holds the Q.850 cause), by uniqueid (= the attempt id) and the
-- server that placed it. eventtime is UTC (cel_pgsql's usegmtime). asterisk_cel_uniqueid_idx.
SELECT min(eventtime) FILTER (WHERE eventtype = 'CHAN_START') AS started_at,
       min(eventtime) FILTER (WHERE eventtype = 'ANSWER') AS answered_at,
       min(eventtime) FILTER (WHERE eventtype = 'HANGUP') AS hungup_at,
       min(extra) FILTER (WHERE eventtype = 'HANGUP') AS hangup_extra
FROM asterisk_cel
WHERE uniqueid = $1 AND server = $2

-- name: prune
-- Rows older than the attempts they could still settle: recovery needs a call's record for
-- minutes, never days. asterisk_cel_recorded_idx.
DELETE FROM asterisk_cel WHERE recorded_at < now() - make_interval(secs => $1)
