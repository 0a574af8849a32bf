-- Asterisk's own record of its channels (CEL), written by each Asterisk's `cel_pgsql` module
-- (docs/asterisk.md): how a call ended while no daemon watched it (docs/reliability.md).
-- `cel_pgsql` fills the columns whose names it knows (eventtype, eventtime in UTC with
-- `usegmtime = yes`, uniqueid = our attempt id, linkedid, channame, extra: JSON with
-- hangupcause) and leaves the others to their default: `server` is the Asterisk's connection
-- application_name, which its cel_pgsql.conf sets (`appname`) to the server's config name.
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
