-- What each caller-chosen command id (an HTTP Idempotency-Key) was first used for: a fingerprint
-- of the request, written in the same statement as its events, so that the key used again for
-- another request is refused rather than answered with the first request's result.
CREATE TABLE idempotency_keys (
    key           uuid        PRIMARY KEY,
    request_hash  text        NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
