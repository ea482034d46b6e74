-- A cluster's monthly budget in whole dollars (0 = none); owned by the control plane.
ALTER TABLE clusters ADD COLUMN budget_dollars BIGINT NOT NULL DEFAULT 0;

-- Billing (owned by the billing crate).

-- Notifications sent, once per cluster, month and threshold (70, 90, 100).
CREATE TABLE billing_events (
    cluster_id TEXT NOT NULL,
    month      TEXT NOT NULL,
    threshold  BIGINT NOT NULL,
    cost_cents BIGINT NOT NULL,
    cap_cents  BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (cluster_id, month, threshold)
);

-- One invoice per account and month. draft -> open (finalized, numbered) -> paid | void.
CREATE TABLE invoices (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL,
    month        TEXT NOT NULL,
    number       BIGINT UNIQUE,
    state        TEXT NOT NULL,
    total_cents  BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    finalized_at BIGINT,
    UNIQUE (account_id, month)
);

CREATE TABLE invoice_lines (
    invoice_id   TEXT NOT NULL REFERENCES invoices (id),
    line_no      BIGINT NOT NULL,
    cluster_id   TEXT NOT NULL,
    cluster_name TEXT NOT NULL,
    kind         TEXT NOT NULL,
    quantity     BIGINT NOT NULL,
    micros       BIGINT NOT NULL,
    cents        BIGINT NOT NULL,
    PRIMARY KEY (invoice_id, line_no)
);
