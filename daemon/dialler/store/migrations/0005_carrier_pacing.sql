-- Carrier pacing shared by every daemon on this database (docs/engine.md, "Pacing"): per
-- carrier a token bucket on the database's clock and its throttling state (AIMD,
-- domain/throttle.py). Claims read and write it in their transaction (rows locked, carrier
-- order), so two daemons together never dial a carrier faster than its calls/s.
CREATE TABLE carrier_pacing (
    -- A carrier name from the config file (carriers are configuration, not rows).
    carrier text PRIMARY KEY,
    -- calls/s as configured, and as allowed now (lower while the carrier throttles us).
    configured_rate double precision NOT NULL CHECK (configured_rate > 0),
    allowed_rate double precision NOT NULL CHECK (allowed_rate > 0),
    -- The bucket: tokens as of refilled_at (the database's clock). Below 0 after a test call.
    tokens double precision NOT NULL,
    refilled_at timestamptz NOT NULL,
    -- Dials and throttling refusals counted since counted_since (AIMD's evidence).
    dials integer NOT NULL DEFAULT 0 CHECK (dials >= 0),
    refusals integer NOT NULL DEFAULT 0 CHECK (refusals >= 0),
    counted_since timestamptz NOT NULL,
    -- The last change of allowed_rate; NULL: never changed.
    changed_at timestamptz
);

-- Every attempt inserted takes a token from its carrier's bucket and counts as a dial: the
-- claim statement (and a test call) inserts exactly the dials made, in the transaction that
-- locked the bucket; one UPDATE per statement, whatever the number of dials.
CREATE FUNCTION dialler_take_carrier_tokens() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    UPDATE carrier_pacing p
    SET tokens = p.tokens - n.dials, dials = p.dials + n.dials
    FROM (SELECT carrier, count(*)::int AS dials FROM new_attempts
          WHERE carrier IS NOT NULL GROUP BY carrier) AS n
    WHERE p.carrier = n.carrier;
    RETURN NULL;
END
$$;

CREATE TRIGGER attempts_take_carrier_tokens
    AFTER INSERT ON attempts
    REFERENCING NEW TABLE AS new_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION dialler_take_carrier_tokens();
