-- Caller IDs per carrier as operators see them (`GET /v1/numbers`, the console's carriers
-- page). See docs/api.md, "Numbers and carriers".

-- name: number_figures
-- Each caller ID of the pool with its attempts that ended since $1 and how many of those
-- ended with a 4xx (429 apart: throttling is told separately), 5xx or 429 final code: a DID
-- the carrier or the callees' networks flag shows up as a jump in 4xx/6xx from one number.
-- attempts has no index on caller_id or ended_at yet, so this reads the attempts table:
-- an operator's page, never a loop of the engine.
SELECT n.number, n.carrier, n.enabled,
       count(a.id) AS calls,
       count(a.id) FILTER (WHERE a.sip_code BETWEEN 400 AND 499 AND a.sip_code <> 429) AS c4xx,
       count(a.id) FILTER (WHERE a.sip_code BETWEEN 500 AND 599) AS c5xx,
       count(a.id) FILTER (WHERE a.sip_code = 429) AS c429
FROM numbers n
LEFT JOIN attempts a ON a.caller_id = n.number AND a.ended_at >= $1
GROUP BY n.number
ORDER BY n.number

-- name: number_campaigns
-- Campaigns that can still dial (draft, running, paused; not cancelled) with each number in
-- their pool: what a swap would change.
SELECT cn.number, c.name
FROM campaign_numbers cn JOIN campaigns c ON c.id = cn.campaign_id
WHERE c.state IN ('draft', 'running', 'paused') AND c.cancelled_at IS NULL
ORDER BY cn.number, c.name
