-- Stripe synchronisation (owned by the billing crate). Every step that creates something at
-- Stripe is recorded here once it succeeded, so a replay after a crash or an outage never
-- creates it twice, whether or not the Stripe endpoint honours idempotency keys.

CREATE TABLE stripe_customers (
    account_id  TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL
);

CREATE TABLE stripe_invoice_items (
    invoice_id TEXT NOT NULL,
    line_no    BIGINT NOT NULL,
    item_id    TEXT NOT NULL,
    PRIMARY KEY (invoice_id, line_no)
);

CREATE TABLE stripe_invoices (
    invoice_id         TEXT PRIMARY KEY,
    stripe_invoice_id  TEXT NOT NULL UNIQUE,
    last_payment_error TEXT
);

-- The $0 subscription each Stripe customer gets, through which monthly invoices are created.
ALTER TABLE stripe_customers ADD COLUMN subscription_id TEXT;
