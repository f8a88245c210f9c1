-- Idempotency-Key on every POST of the /v1 API (api/idempotency.go): the first
-- request with a key claims its row, runs, and stores its answer; a retry of
-- the same request gets that answer back, a different request with the same
-- key is refused. 0001 declared an idempotency_keys table that nothing ever
-- wrote; this one replaces it.
DROP TABLE IF EXISTS idempotency_keys;

CREATE TABLE idempotency_keys (
    -- Whose key: the practice ID, or "<practice ID>/<client ID>" for a client
    -- portal token, so two callers may pick the same key.
    scope          text NOT NULL,
    key            text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    method         text NOT NULL,
    path           text NOT NULL,          -- the concrete path, e.g. /v1/invoices/inv_x/payments
    request_hash   bytea NOT NULL,         -- sha256 of method, path and body
    claim_token    text NOT NULL,          -- which attempt holds the row while it runs
    status         int,                    -- NULL while the request is in flight
    response       bytea,
    content_type   text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    locked_until   timestamptz NOT NULL,   -- an abandoned claim may be taken over after this
    PRIMARY KEY (scope, key)
);
-- The periodic sweep of rows past their 24 hours.
CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);
