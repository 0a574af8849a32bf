-- The audio frames the worker reports for an answered call (`audio` of its result), kept as
-- numbers: the test-call stream and triage read them instead of parsing the free-text notes.
-- NULL when the worker reported none.
ALTER TABLE attempts ADD COLUMN audio_frames_sent integer CHECK (audio_frames_sent >= 0);
ALTER TABLE attempts ADD COLUMN audio_frames_received integer
    CHECK (audio_frames_received >= 0);
