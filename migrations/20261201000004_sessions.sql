-- Every session token issued at log-in (the token itself is never stored: it carries this id,
-- signed). A session is accepted only while its row is here, unexpired and not revoked, so
-- log-out and a password change end it at once. Times are UTC unix seconds.
CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX sessions_account ON sessions (account_id);
