-- Atomic invoice creation (store/invoices.go CreateInvoiceOnce). The row and
-- its workflow start are one idempotent step: the row remembers the request
-- that made it (creation_key: the caller's idempotency scope and key;
-- creation_hash: what was asked), so a retry after a failed workflow start
-- finds the same invoice, with the same number, instead of making a second
-- one; and workflow_started_at says the start went through, so the
-- reconciler starts the workflow of an invoice whose API process died in
-- between and whose client never retried.
ALTER TABLE invoices
    ADD COLUMN creation_key        text,
    ADD COLUMN creation_hash       text,
    ADD COLUMN workflow_started_at timestamptz;
ALTER TABLE invoices ADD CONSTRAINT invoices_creation_key UNIQUE (practice_id, creation_key);
-- The reconciler's work list: API-created invoices whose start is unconfirmed.
-- Invoices from before this migration have no creation_key and are not on it.
CREATE INDEX invoices_workflow_unstarted ON invoices(created_at)
    WHERE workflow_started_at IS NULL AND creation_key IS NOT NULL;
