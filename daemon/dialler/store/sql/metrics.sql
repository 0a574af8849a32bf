-- Gauges refreshed from the database every few seconds (dialler.metrics.refresh, docs/metrics.md).
-- Only running and paused campaigns get series: a completed campaign's series disappear, and a
-- draft has nothing to watch. Every query here is one scan per concern, grouped by campaign, so
-- the cost does not grow with the number of campaigns.

-- name: watched_campaigns
SELECT c.id, c.state, c.window_start, c.window_end, c.window_days, c.timezone, c.last_dial_at
FROM campaigns c
WHERE c.state IN ('running', 'paused')

-- name: open_attempts
-- Calls in flight per campaign and attempt state, and those past their deadline (not yet
-- reconciled by stale recovery, which runs every 5 s: a non-zero count that lasts means
-- recovery is not keeping up or cannot reach Asterisk). attempts_open_deadline_idx is partial
-- on open attempts, so this reads only live calls.
SELECT a.campaign_id, a.state, count(*) AS n,
       count(*) FILTER (WHERE a.deadline_at < now()) AS stuck
FROM attempts a JOIN campaigns c ON c.id = a.campaign_id
WHERE a.state <> 'final' AND c.state IN ('running', 'paused')
GROUP BY a.campaign_id, a.state

-- name: fleet_busy
-- Reserved slots, whichever worker holds them (a slot is a row until its attempt is final).
SELECT count(*) FROM worker_slots
