-- Sign-ups waiting for their address to be confirmed (with --sign-up-confirmation email): the
-- account is created only when the mailed link is used, so a sign-up answers alike whether or
-- not the address already has an account. Only a keyed hash of each link's token is kept, with
-- the argon2id hash of the chosen password; rows go when used, when the address gets an
-- account, or once expired.
CREATE TABLE sign_up_confirmations (
    token_hash TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sign_up_confirmations_email ON sign_up_confirmations (email);
