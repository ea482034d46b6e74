-- One-time password reset links sent by e-mail. Only a SHA-256 of the link's token is kept:
-- the store never holds a usable link. A link is deleted when used, and every link of an
-- account when its password changes.
CREATE TABLE password_resets (
    token_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX password_resets_account ON password_resets (account_id);
