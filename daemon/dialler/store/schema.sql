-- The dialler's current schema, in one piece: what all of migrations/ applied in order give.
--
-- This file is for reading (the whole schema with its reasons in one place) and for the test
-- that proves the migrations and this file agree (tests/integration/test_migrations.py
-- compares `pg_dump --schema-only` of both). Databases are never created from it: they are
-- always built and upgraded by `dialler db migrate`, which keeps schema_migrations.
--
-- When you add migrations/NNNN_name.sql, change this file to match in the same commit.
--
-- Conventions (docs/schema.md): uuid keys from gen_random_uuid() (core since PostgreSQL 13),
-- timestamptz everywhere, text + CHECK for enumerated states (a new state is one ALTER of a
-- constraint, not an enum type migration), durations as bigint milliseconds (*_ms).
-- Phone numbers are E.164 text: '+', then 2 to 15 digits, no leading zero.

-- Keeps updated_at honest without every UPDATE having to remember it.
CREATE FUNCTION dialler_touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

-- Lease owners: one row per running daemon process. Several daemons may share the database.
CREATE TABLE daemons (
    id text PRIMARY KEY,                  -- chosen by the daemon at start (host, pid, random)
    hostname text NOT NULL,
    pid integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    -- Refreshed by the daemon's heartbeat task; a daemon whose heartbeat is older than the
    -- lease time is dead, and its leases may be taken over after reconciliation.
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bots (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL UNIQUE CHECK (name <> ''),
    prompt text NOT NULL,
    -- Opaque to the dialler: passed to workers as is (stt, llm, tts, ...).
    pipeline jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(pipeline) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE campaigns (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL UNIQUE CHECK (name <> ''),
    -- Nullable: a draft may be saved before its bot is chosen (checked at start).
    bot_id uuid REFERENCES bots (id),
    -- Cancelling is not a state: a cancelled campaign stays running/paused until its live
    -- calls finish, then becomes completed; cancelled_at records that it was cancelled.
    state text NOT NULL DEFAULT 'draft'
        CHECK (state IN ('draft', 'running', 'paused', 'completed')),
    cancelled_at timestamptz,
    concurrency integer NOT NULL DEFAULT 50,
    -- The window is kept as written ('HH:MM', days as mon..sun) because a draft may hold an
    -- invalid one: `campaign start` must be able to name the bad value. Once past draft it is
    -- well-formed (constraint below). '24:00' is a valid end; zero-padded HH:MM strings
    -- compare like times, so start < end is a plain text comparison.
    window_start text NOT NULL DEFAULT '09:00',
    window_end text NOT NULL DEFAULT '18:00',
    window_days text[] NOT NULL DEFAULT '{mon,tue,wed,thu,fri}',
    -- IANA name; validated by the application (zoneinfo), which evaluates the window.
    timezone text NOT NULL DEFAULT 'UTC',
    always_on boolean NOT NULL DEFAULT false,
    ring_timeout_ms bigint NOT NULL DEFAULT 30000 CHECK (ring_timeout_ms > 0),
    retry_max_attempts integer NOT NULL DEFAULT 1 CHECK (retry_max_attempts >= 1),
    retry_delay_ms bigint NOT NULL DEFAULT 1800000 CHECK (retry_delay_ms >= 0),
    retry_on_system text[] NOT NULL DEFAULT '{}'
        CHECK (retry_on_system <@ '{no_answer,rejected,RNR,error,timeout,abandoned}'::text[]),
    -- Custom dispositions reported by the bot: free names.
    retry_on_custom text[] NOT NULL DEFAULT '{}',
    -- Redial rules; NULL = rule disabled.
    redial_stop_after_ms bigint CHECK (redial_stop_after_ms >= 0),
    redial_short_connect_ms bigint CHECK (redial_short_connect_ms >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    completed_at timestamptz,
    -- Denormalised from attempts so that live activity and stall detection read one row
    -- instead of scanning attempts; written when a dial is placed.
    last_dial_at timestamptz,
    -- The window read on each contact's own clocks (0004): CONTRACT "Campaign window per
    -- contact".
    window_per_contact boolean NOT NULL DEFAULT false,
    -- What `campaign start` guarantees, kept true for every non-draft campaign. The other
    -- start checks (non-empty number pool, contacts present) span tables and stay in code.
    CONSTRAINT campaigns_startable_check CHECK (
        state = 'draft' OR (
            bot_id IS NOT NULL
            AND concurrency >= 1
            AND window_start ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'
            AND window_end ~ '^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$'
            AND window_start < window_end
            AND cardinality(window_days) >= 1
            AND window_days <@ '{mon,tue,wed,thu,fri,sat,sun}'::text[]
        )
    )
);

CREATE TRIGGER campaigns_touch_updated_at BEFORE UPDATE ON campaigns
    FOR EACH ROW EXECUTE FUNCTION dialler_touch_updated_at();

-- The global pool of caller IDs, mirrored from the config file's `numbers`.
CREATE TABLE numbers (
    number text PRIMARY KEY CHECK (number ~ '^\+[1-9][0-9]{1,14}$'),
    -- A carrier name from the config file (carriers are configuration, not rows).
    carrier text NOT NULL,
    -- `dialler number disable` flips this; a number leaving the config is disabled, not
    -- deleted, because campaigns still refer to it.
    enabled boolean NOT NULL DEFAULT true,
    -- Caller IDs are rotated least-recently-used first, spreading calls over the pool.
    last_used_at timestamptz
);

-- A campaign's number pool.
CREATE TABLE campaign_numbers (
    campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    number text NOT NULL REFERENCES numbers (number),
    PRIMARY KEY (campaign_id, number)
);

CREATE TABLE contacts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    phone_number text NOT NULL CHECK (phone_number ~ '^\+[1-9][0-9]{1,14}$'),
    -- json, not jsonb: jsonb reorders keys, and the attempt report lists variables in the
    -- order they were first seen (the CSV's column order). Never queried inside, only read.
    variables json NOT NULL DEFAULT '{}' CHECK (json_typeof(variables) = 'object'),
    -- Waiting: pending, retry_scheduled, callback_scheduled. In flight: dialing, connected,
    -- wrapping (call over, result not final yet). Final: done, exhausted, cancelled.
    state text NOT NULL DEFAULT 'pending' CHECK (state IN (
        'pending', 'retry_scheduled', 'callback_scheduled',
        'dialing', 'connected', 'wrapping',
        'done', 'exhausted', 'cancelled')),
    -- Attempts counted against retry_max_attempts: callbacks and our own failures
    -- (attempts.counts_toward_max = false) do not increase it.
    attempts_used integer NOT NULL DEFAULT 0 CHECK (attempts_used >= 0),
    -- When a waiting contact may be dialled (retry or callback time; creation for pending).
    -- NULL outside the waiting states, where it means nothing.
    next_due_at timestamptz DEFAULT now(),
    -- The daemon holding the contact while it is in flight, until lease_expires_at. Plain
    -- text, no foreign key: leases are judged by their expiry, and a dead daemon's row may
    -- be purged without touching contacts.
    lease_owner text,
    lease_expires_at timestamptz,
    -- Line of the CSV file the contact came from (NULL when added through the API), so
    -- errors and support questions can point at the source row.
    line_number integer CHECK (line_number >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- The zones the contact's number may be in, sorted, space-separated; '' = the campaign's
    -- own zone (0004). Many contacts share one key: due-ness is computed per key.
    zone_key text NOT NULL DEFAULT '',
    -- Why the contact was cancelled without a call ('no_common_window'), for the call list.
    state_reason text,
    -- A number is called once per campaign; duplicates are reported at import.
    UNIQUE (campaign_id, phone_number),
    CONSTRAINT contacts_due_check CHECK (
        state NOT IN ('pending', 'retry_scheduled', 'callback_scheduled')
        OR next_due_at IS NOT NULL),
    CONSTRAINT contacts_lease_check CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL))
);

CREATE TRIGGER contacts_touch_updated_at BEFORE UPDATE ON contacts
    FOR EACH ROW EXECUTE FUNCTION dialler_touch_updated_at();

-- Drives the claim query (`... WHERE campaign_id = $1 AND state IN (<the same three>) AND
-- next_due_at <= now() ORDER BY next_due_at, line_number LIMIT n FOR UPDATE SKIP LOCKED`):
-- equally due contacts in file order, straight off the index (0009). Partial, so it
-- holds only the waiting contacts: finished ones (most of a big campaign) cost nothing, and
-- the scan stops at the first contact not yet due. The claim must repeat this predicate for
-- the planner to use the index.
CREATE INDEX contacts_due_idx ON contacts (campaign_id, next_due_at, line_number)
    WHERE state IN ('pending', 'retry_scheduled', 'callback_scheduled');

-- The claim of a per-contact-window campaign: due contacts of one open zone key, in due order
-- (0004). contacts_due_idx stays for campaigns that read the window on one clock.
CREATE INDEX contacts_zone_due_idx ON contacts (campaign_id, zone_key, next_due_at, line_number)
    WHERE state IN ('pending', 'retry_scheduled', 'callback_scheduled');

-- Per-state counts of one campaign (stats grid, completion check) without reading its rows.
CREATE INDEX contacts_campaign_state_idx ON contacts (campaign_id, state);

-- Stale recovery: in-flight contacts whose lease has expired. Partial: in-flight contacts
-- are at most the sum of the campaigns' concurrency, so this index stays tiny.
CREATE INDEX contacts_lease_idx ON contacts (lease_expires_at)
    WHERE state IN ('dialing', 'connected', 'wrapping');

-- One dial of one contact.
CREATE TABLE attempts (
    -- No default: the daemon generates the uuid before the Originate, because it is also the
    -- Asterisk channel id (ChannelId / Uniqueid) that ties AMI events back to this row.
    id uuid PRIMARY KEY,
    contact_id uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    -- Denormalised from contacts: reports and live views filter attempts by campaign.
    campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    -- 1, 2, 3, ... per contact, whatever counted: callbacks and requeues get numbers too.
    attempt_number integer NOT NULL CHECK (attempt_number >= 1),
    -- False for callbacks and for attempts that failed on our side before the call was
    -- placed: those do not use up the contact's retry_max_attempts.
    counts_toward_max boolean NOT NULL DEFAULT true,
    -- Caller ID, carrier and Asterisk server as used for this dial; plain text so history
    -- survives configuration changes. NULL until chosen.
    caller_id text CHECK (caller_id ~ '^\+[1-9][0-9]{1,14}$'),
    carrier text,
    asterisk text,
    -- The daemon that owns the attempt (no foreign key: see contacts.lease_owner).
    daemon_id text NOT NULL,
    state text NOT NULL DEFAULT 'dialing'
        CHECK (state IN ('dialing', 'connected', 'wrapping', 'final')),
    queued_at timestamptz NOT NULL DEFAULT now(),
    dialled_at timestamptz,
    answered_at timestamptz,
    ended_at timestamptz,
    -- When a non-final attempt is considered stale and reconciled against Asterisk (its
    -- channel still alive?) instead of waited for. Pushed forward on answer.
    deadline_at timestamptz NOT NULL,
    -- The callee's final SIP code (200 when answered); NULL when none came.
    sip_code integer CHECK (sip_code BETWEEN 100 AND 699),
    -- Outcome of the dial vs disposition of the call: see CONTRACT.md.
    outcome text CHECK (outcome IN ('answered', 'no_answer', 'rejected', 'error')),
    disposition text,
    -- Talk time (answer to hang-up); 0 when unanswered.
    duration_ms bigint NOT NULL DEFAULT 0 CHECK (duration_ms >= 0),
    -- Worker name as it was; no foreign key, workers come and go.
    worker text,
    -- The bot's callback request, and anything it noted.
    callback_at timestamptz,
    notes text,
    -- The decision taken when the attempt became final, kept so the report explains itself.
    next_action text
        CHECK (next_action IN ('retry', 'callback', 'cancelled', 'exhausted', 'done', 'requeue')),
    next_at timestamptz,
    finalised_at timestamptz,
    -- When the answered call was handed to its worker (0002): answer-to-attach latency.
    attached_at timestamptz,
    -- Audio frames the worker sent to and received from the call, as its result reported
    -- them (0003); NULL when it reported none.
    audio_frames_sent integer CHECK (audio_frames_sent >= 0),
    audio_frames_received integer CHECK (audio_frames_received >= 0),
    -- Never dial a contact twice under one attempt number, whichever daemon tries.
    UNIQUE (contact_id, attempt_number),
    -- A final attempt is complete: it has its result and its decision; an open one has none.
    CONSTRAINT attempts_final_check CHECK (
        (state = 'final') = (finalised_at IS NOT NULL)
        AND (state <> 'final'
             OR (outcome IS NOT NULL AND disposition IS NOT NULL AND next_action IS NOT NULL))),
    CONSTRAINT attempts_next_at_check CHECK (
        next_action NOT IN ('retry', 'callback') OR next_at IS NOT NULL)
);

-- The attempt report: final attempts of one campaign in the order they were finalised.
CREATE INDEX attempts_report_idx ON attempts (campaign_id, finalised_at)
    WHERE state = 'final';

-- Stale recovery: open attempts past their deadline. Partial: only in-flight rows, so it
-- stays as small as the number of live calls.
CREATE INDEX attempts_open_deadline_idx ON attempts (deadline_at)
    WHERE state <> 'final';

-- The bot fleet: workers from the config file or registered over the HTTP API.
CREATE TABLE workers (
    name text PRIMARY KEY,
    -- AudioSocket address the dialplan connects the answered call to.
    host text NOT NULL,
    port integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    capacity integer NOT NULL CHECK (capacity >= 0),
    source text NOT NULL CHECK (source IN ('config', 'api')),
    -- A worker whose heartbeat is too old gets no new calls; NULL = never heard from.
    last_heartbeat_at timestamptz,
    enabled boolean NOT NULL DEFAULT true
);

-- Fleet slots reserved per attempt, in the database so that several daemons share one fleet:
-- a worker's free slots are its capacity minus its rows here. Reserved before the dial,
-- confirmed by the FastAGI attach, deleted when the attempt ends.
CREATE TABLE worker_slots (
    attempt_id uuid PRIMARY KEY REFERENCES attempts (id) ON DELETE CASCADE,
    -- Cascade: a worker removed from the fleet frees its reservations; the attach then
    -- looks for another free worker (or abandons the call) instead of failing.
    worker text NOT NULL REFERENCES workers (name) ON DELETE CASCADE,
    reserved_at timestamptz NOT NULL DEFAULT now(),
    attached_at timestamptz
);

-- Counting a worker's reservations.
CREATE INDEX worker_slots_worker_idx ON worker_slots (worker);

-- Do-not-call list: checked at import, at the API trigger and again at claim time.
CREATE TABLE suppressions (
    phone_number text PRIMARY KEY CHECK (phone_number ~ '^\+[1-9][0-9]{1,14}$'),
    added_at timestamptz NOT NULL DEFAULT now(),
    reason text
);

-- ---- 0005_carrier_pacing ----------------------------------------------------------------
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

-- Asterisk's own record of its channels (CEL), written by each Asterisk's cel_pgsql module:
-- how a call ended while no daemon watched it (docs/reliability.md). `server`: the writer's
-- connection application_name, which its cel_pgsql.conf sets to the server's config name.
CREATE TABLE asterisk_cel (
    eventtype text NOT NULL,
    eventtime timestamp NOT NULL,
    uniqueid text NOT NULL,
    linkedid text,
    channame text,
    extra text,
    server text NOT NULL DEFAULT current_setting('application_name'),
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX asterisk_cel_uniqueid_idx ON asterisk_cel (uniqueid);
CREATE INDEX asterisk_cel_recorded_idx ON asterisk_cel (recorded_at);
