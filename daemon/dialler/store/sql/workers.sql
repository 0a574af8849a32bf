-- The fleet as operators see it (`fleet list`, `GET /v1/fleet`, the console's fleet page).
-- See docs/fleet.md, "Listing the fleet".

-- name: fleet_listing
-- Every worker with its slots in use (reservations of open attempts), its last heartbeat,
-- and whether it is in rotation by `fleet_free`'s rule, on the database's clock like the
-- claims that use it ($1: the heartbeat timeout in seconds). A worker taken out of rotation
-- is stamped '-infinity' (fleet.sql): shown as never heard from (NULL), not as year 1.
SELECT w.name, w.host, w.port, w.capacity, w.source, w.enabled,
       CASE WHEN isfinite(w.last_heartbeat_at) THEN w.last_heartbeat_at END
           AS last_heartbeat_at,
       count(s.attempt_id) AS in_use,
       (w.enabled AND (w.last_heartbeat_at > now() - make_interval(secs => $1)
                       OR (w.source = 'config' AND w.last_heartbeat_at IS NULL)))
           AS in_rotation
FROM workers w LEFT JOIN worker_slots s ON s.worker = w.name
GROUP BY w.name
ORDER BY w.name
