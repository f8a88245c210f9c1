-- Payment attempts (store/attempts.go). Everything a payer asked for is
-- written here before anything is sent to the processor: the attempt's ID is
-- the processor's idempotency key and never changes, however often the
-- charge is retried, by an activity, a new workflow run or the reconciler.
-- An attempt whose charge may have reached the processor ('charging') is
-- settled by asking the processor, never by charging again.
CREATE TABLE payment_attempts (
    id                      text PRIMARY KEY,      -- payment ID, or balance payment ID
    kind                    text NOT NULL CHECK (kind IN ('invoice','balance')),
    practice_id             text NOT NULL REFERENCES practices(id),
    client_id               text NOT NULL,
    invoice_id              text REFERENCES invoices(id),  -- NULL for a balance payment
    target                  text NOT NULL,         -- the invoice ID, or the client ID for a balance payment
    scope                   text NOT NULL,         -- whose idempotency key: practice, client, pay link
    idempotency_key         text NOT NULL,
    request_hash            text NOT NULL,         -- what was asked, to refuse a key reused for another payment
    amount                  bigint NOT NULL CHECK (amount > 0),
    currency                text NOT NULL,
    payment_method_id       text NOT NULL DEFAULT '',
    saved_payment_method_id text NOT NULL DEFAULT '',
    save_card               boolean NOT NULL DEFAULT false,
    off_session             boolean NOT NULL DEFAULT false,
    customer_id             text NOT NULL DEFAULT '',
    payer_name              text NOT NULL DEFAULT '',
    billing_zip             text NOT NULL DEFAULT '',
    return_url              text NOT NULL DEFAULT '',
    description             text NOT NULL DEFAULT '',
    pay_link_id             text,                  -- the pay link it came through, for decline limits
    allocations             jsonb,                 -- balance payment: [{InvoiceID, PaymentID, Amount}], fixed before charging
    status                  text NOT NULL CHECK (status IN ('new','charging','succeeded','processing','requires_action','failed')),
    processor_intent_id     text,
    next_action_url         text NOT NULL DEFAULT '',
    method_type             text NOT NULL DEFAULT '',
    brand                   text NOT NULL DEFAULT '',
    last4                   text NOT NULL DEFAULT '',
    bank_name               text NOT NULL DEFAULT '',
    failure_code            text NOT NULL DEFAULT '',
    decline_code            text NOT NULL DEFAULT '',
    failure_message         text NOT NULL DEFAULT '',
    declined                boolean NOT NULL DEFAULT false,  -- the processor declined it (counts toward lockouts)
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (target, scope, idempotency_key)
);
-- The reconciler's work list, and what a new charge must wait for.
CREATE INDEX payment_attempts_unsettled ON payment_attempts(updated_at)
    WHERE status IN ('new','charging','processing','requires_action');
CREATE INDEX payment_attempts_client ON payment_attempts(client_id, created_at);
CREATE INDEX payment_attempts_invoice ON payment_attempts(invoice_id, created_at) WHERE invoice_id IS NOT NULL;
CREATE INDEX payment_attempts_declines_link ON payment_attempts(pay_link_id, created_at) WHERE declined;

-- Payments recorded before attempts existed get theirs, so the reconciler
-- and the webhook can settle them the same way.
INSERT INTO payment_attempts (id, kind, practice_id, client_id, invoice_id, target, scope, idempotency_key, request_hash,
    amount, currency, payer_name, billing_zip, status, processor_intent_id, method_type, brand, last4, bank_name,
    failure_code, decline_code, failure_message, created_at, updated_at)
SELECT id, 'invoice', practice_id, client_id, invoice_id, invoice_id, 'migrated', idempotency_key, '', amount, currency,
    payer_name, billing_zip, status, processor_intent_id, method_type, brand, last4, bank_name, failure_code, decline_code,
    failure_message, created_at, created_at
FROM payments WHERE balance_payment_id IS NULL AND status <> 'pending';

INSERT INTO payment_attempts (id, kind, practice_id, client_id, target, scope, idempotency_key, request_hash, amount,
    currency, allocations, status, processor_intent_id, method_type, brand, last4, bank_name, created_at, updated_at)
SELECT balance_payment_id, 'balance', min(practice_id), min(client_id), min(client_id), 'migrated', balance_payment_id, '',
    sum(amount), min(currency),
    jsonb_agg(jsonb_build_object('InvoiceID', invoice_id, 'PaymentID', id, 'Amount', amount) ORDER BY id),
    min(status), min(processor_intent_id), min(method_type), min(brand), min(last4), min(bank_name), min(created_at), min(created_at)
FROM payments WHERE balance_payment_id IS NOT NULL AND status <> 'pending' GROUP BY balance_payment_id;
