-- When the answered call was handed to its worker (FastAGI attach): with answered_at, the
-- answer-to-attach latency of every call, kept after the slot itself is released.
ALTER TABLE attempts ADD COLUMN attached_at timestamptz;
