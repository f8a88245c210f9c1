-- billflow's whole data model. Postgres is the system of record; Temporal holds
-- workflow state. Unique constraints make every write idempotent.

CREATE TABLE practices (
    id                            text PRIMARY KEY,
    name                          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    currency                      text NOT NULL DEFAULT 'usd',
    timezone                      text NOT NULL DEFAULT 'UTC',
    email                         text NOT NULL DEFAULT '',
    phone                         text NOT NULL DEFAULT '',
    address_lines                 text[] NOT NULL DEFAULT '{}',
    logo_data_uri                 text NOT NULL DEFAULT '',
    provider_name                 text NOT NULL DEFAULT '',
    credentials                   text NOT NULL DEFAULT '',
    npi                           text NOT NULL DEFAULT '',
    tax_id                        text NOT NULL DEFAULT '',
    license_number                text NOT NULL DEFAULT '',
    license_state                 text NOT NULL DEFAULT '',
    paper                         text NOT NULL DEFAULT 'letter' CHECK (paper IN ('letter','a4')),
    allow_client_card_removal     boolean NOT NULL DEFAULT true,
    show_client_names_in_temporal boolean NOT NULL DEFAULT false,
    reminder_offsets_days         int[] NOT NULL DEFAULT '{-3,0,7,14}',
    pay_link_days_after_due       int NOT NULL DEFAULT 30 CHECK (pay_link_days_after_due >= 0),
    refund_window_days            int NOT NULL DEFAULT 180 CHECK (refund_window_days >= 0),
    invoice_seq                   bigint NOT NULL DEFAULT 0,
    created_at                    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id           text PRIMARY KEY,
    practice_id  text NOT NULL REFERENCES practices(id),
    prefix       text NOT NULL,
    key_hash     bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX api_keys_practice ON api_keys(practice_id);

CREATE TABLE clients (
    id                  text PRIMARY KEY,
    practice_id         text NOT NULL REFERENCES practices(id),
    name                text NOT NULL,
    email               text NOT NULL,
    date_of_birth       date,
    address             jsonb,
    insurance           jsonb,
    stripe_customer_id  text UNIQUE,
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (practice_id, id)
);
CREATE INDEX clients_practice ON clients(practice_id, created_at);

CREATE TABLE invoices (
    id                   text PRIMARY KEY,
    practice_id          text NOT NULL REFERENCES practices(id),
    client_id            text NOT NULL,
    number               text NOT NULL,
    currency             text NOT NULL,
    status               text NOT NULL CHECK (status IN ('draft','open','processing','partially_paid','paid','partially_refunded','refunded','void')),
    issue_date           date NOT NULL,
    due_date             date NOT NULL,
    subtotal             bigint NOT NULL CHECK (subtotal >= 0),
    total                bigint NOT NULL CHECK (total >= 0),
    amount_paid          bigint NOT NULL DEFAULT 0 CHECK (amount_paid >= 0),
    amount_refunded      bigint NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0),
    amount_due           bigint NOT NULL CHECK (amount_due >= 0),
    amount_processing    bigint NOT NULL DEFAULT 0 CHECK (amount_processing >= 0),
    partial_enabled      boolean NOT NULL DEFAULT false,
    partial_min_amount   bigint CHECK (partial_min_amount > 0),
    partial_min_percent  int CHECK (partial_min_percent BETWEEN 1 AND 100),
    max_installments     int NOT NULL DEFAULT 2 CHECK (max_installments >= 1),
    memo                 text NOT NULL DEFAULT '',
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    paid_at              timestamptz,
    voided_at            timestamptz,
    UNIQUE (practice_id, number),
    FOREIGN KEY (practice_id, client_id) REFERENCES clients(practice_id, id)
);
CREATE INDEX invoices_client ON invoices(client_id, created_at);
CREATE INDEX invoices_practice ON invoices(practice_id, created_at, id);
CREATE INDEX invoices_open_due ON invoices(due_date, id) WHERE amount_due > 0 AND status IN ('open','partially_paid');

CREATE TABLE invoice_items (
    invoice_id        text NOT NULL REFERENCES invoices(id),
    position          int NOT NULL,
    service_date      date NOT NULL,
    description       text NOT NULL,
    cpt_code          text NOT NULL DEFAULT '',
    modifiers         text[] NOT NULL DEFAULT '{}',
    units             bigint NOT NULL CHECK (units > 0),
    unit_amount       bigint NOT NULL CHECK (unit_amount >= 0),
    amount            bigint NOT NULL CHECK (amount >= 0),
    diagnosis_codes   text[] NOT NULL DEFAULT '{}',
    place_of_service  text NOT NULL DEFAULT '',
    PRIMARY KEY (invoice_id, position)
);

CREATE TABLE payment_methods (
    id                   text PRIMARY KEY,
    practice_id          text NOT NULL REFERENCES practices(id),
    client_id            text NOT NULL,
    processor_pm_id      text NOT NULL,
    type                 text NOT NULL,
    brand                text NOT NULL DEFAULT '',
    last4                text NOT NULL DEFAULT '',
    exp_month            int,
    exp_year             int,
    bank_name            text NOT NULL DEFAULT '',
    cardholder_name      text NOT NULL DEFAULT '',
    billing_zip          text NOT NULL DEFAULT '',
    created_at           timestamptz NOT NULL DEFAULT now(),
    detached_at          timestamptz,
    UNIQUE (client_id, processor_pm_id),
    FOREIGN KEY (practice_id, client_id) REFERENCES clients(practice_id, id)
);

-- A payment is one charge attempt applied to one invoice. A balance payment is
-- one PaymentIntent applied to several invoices: its rows share balance_payment_id.
CREATE TABLE payments (
    id                    text PRIMARY KEY,
    practice_id           text NOT NULL REFERENCES practices(id),
    client_id             text NOT NULL,
    invoice_id            text NOT NULL REFERENCES invoices(id),
    balance_payment_id    text,
    idempotency_key       text NOT NULL,
    amount                bigint NOT NULL CHECK (amount > 0),
    currency              text NOT NULL,
    status                text NOT NULL CHECK (status IN ('pending','processing','requires_action','succeeded','failed')),
    processor_intent_id   text,
    method_type           text NOT NULL DEFAULT '',
    brand                 text NOT NULL DEFAULT '',
    last4                 text NOT NULL DEFAULT '',
    bank_name             text NOT NULL DEFAULT '',
    payer_name            text NOT NULL DEFAULT '',
    billing_zip           text NOT NULL DEFAULT '',
    failure_code          text NOT NULL DEFAULT '',
    decline_code          text NOT NULL DEFAULT '',
    failure_message       text NOT NULL DEFAULT '',
    amount_refunded       bigint NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0 AND amount_refunded <= amount),
    created_at            timestamptz NOT NULL DEFAULT now(),
    succeeded_at          timestamptz,
    UNIQUE (invoice_id, idempotency_key),
    UNIQUE (processor_intent_id, invoice_id)
);
CREATE INDEX payments_invoice ON payments(invoice_id, created_at);
CREATE INDEX payments_client ON payments(client_id, created_at);

CREATE TABLE refunds (
    id                   text PRIMARY KEY,
    practice_id          text NOT NULL REFERENCES practices(id),
    invoice_id           text NOT NULL REFERENCES invoices(id),
    payment_id           text NOT NULL REFERENCES payments(id),
    idempotency_key      text NOT NULL,
    amount               bigint NOT NULL CHECK (amount > 0),
    currency             text NOT NULL,
    reason               text NOT NULL DEFAULT '',
    status               text NOT NULL CHECK (status IN ('pending','succeeded','failed')),
    processor_refund_id  text UNIQUE,
    created_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (invoice_id, idempotency_key)
);
CREATE INDEX refunds_invoice ON refunds(invoice_id, created_at);

-- The append-only ledger: for every invoice, the sum of its entries is its
-- balance (positive: the client owes; negative: a credit from overpayment).
CREATE TABLE ledger_entries (
    id               bigserial PRIMARY KEY,
    practice_id      text NOT NULL REFERENCES practices(id),
    client_id        text NOT NULL,
    invoice_id       text NOT NULL REFERENCES invoices(id),
    kind             text NOT NULL CHECK (kind IN ('invoice','payment','payment_reversal','refund','refund_credit','void')),
    amount           bigint NOT NULL,
    currency         text NOT NULL,
    payment_id       text,
    refund_id        text,
    entry_key        text NOT NULL UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_invoice ON ledger_entries(invoice_id);
CREATE INDEX ledger_client ON ledger_entries(client_id, created_at);

CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_entries is append-only';
END $$;
CREATE TRIGGER ledger_no_update BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

CREATE TABLE documents (
    id            text PRIMARY KEY,
    practice_id   text NOT NULL REFERENCES practices(id),
    client_id     text NOT NULL,
    invoice_id    text REFERENCES invoices(id),
    kind          text NOT NULL CHECK (kind IN ('invoice','receipt','statement','superbill')),
    period_from   date,
    period_to     date,
    sha256        bytea NOT NULL,
    size          bigint NOT NULL,
    content       bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (practice_id, client_id, kind, sha256)
);
CREATE INDEX documents_client ON documents(client_id, kind, created_at);

CREATE TABLE emails (
    message_id    text PRIMARY KEY,
    practice_id   text NOT NULL REFERENCES practices(id),
    client_id     text,
    invoice_id    text,
    kind          text NOT NULL,
    status        text NOT NULL CHECK (status IN ('sending','sent','rejected')),
    attempts      int NOT NULL DEFAULT 0,
    last_error    text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz
);

CREATE TABLE pay_links (
    id           text PRIMARY KEY,
    invoice_id   text NOT NULL REFERENCES invoices(id),
    token_hash   bytea NOT NULL UNIQUE,
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pay_links_invoice ON pay_links(invoice_id);

CREATE TABLE portal_tokens (
    id           text PRIMARY KEY,
    practice_id  text NOT NULL REFERENCES practices(id),
    client_id    text NOT NULL,
    token_hash   bytea NOT NULL UNIQUE,
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_events (
    id            text PRIMARY KEY,
    type          text NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE reminders_sent (
    invoice_id   text NOT NULL REFERENCES invoices(id),
    step         int NOT NULL,
    sent_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (invoice_id, step)
);

-- API idempotency: a POST with an Idempotency-Key is answered once and replayed.
CREATE TABLE idempotency_keys (
    scope          text NOT NULL,
    key            text NOT NULL,
    request_hash   bytea NOT NULL,
    status_code    int,
    response       bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
