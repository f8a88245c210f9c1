-- Client payment leases (store/paylock.go). A balance payment charges several
-- invoices of one client at once, outside their workflows; an invoice payment
-- racing it could pay the same amount twice. So every charge holds a lease
-- on its client from reading what is due until the charge is recorded:
-- invoice payments share it (each invoice's own workflow already runs its
-- payments one at a time), a balance payment holds it alone. A lease, not a
-- held connection: no pool connection waits on the processor, and a worker
-- that dies mid-charge frees it when the lease runs out.
CREATE TABLE client_payment_leases (
    client_id  text NOT NULL,
    holder     text NOT NULL,          -- the payment or balance payment ID charging
    exclusive  boolean NOT NULL,       -- a balance payment: charging, or waiting for the others to finish
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (client_id, holder)
);

-- take_client_payment_lease takes (or renews) holder's lease on a client's
-- payments and says whether holder may charge now. Callers serialize on an
-- advisory lock per client, so the checks and the insert are one step.
-- An exclusive taker that must wait still leaves its row, which keeps new
-- shared takers out until it has charged: a balance payment is not starved
-- by a stream of invoice payments. Only one exclusive taker waits at a time.
CREATE FUNCTION take_client_payment_lease(p_client text, p_holder text, p_exclusive boolean, p_lease interval)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('client_payment_lease:' || p_client, 0));
    DELETE FROM client_payment_leases WHERE client_id = p_client AND expires_at < now();
    IF EXISTS (SELECT 1 FROM client_payment_leases WHERE client_id = p_client AND holder <> p_holder AND exclusive) THEN
        RETURN false;
    END IF;
    INSERT INTO client_payment_leases (client_id, holder, exclusive, expires_at)
    VALUES (p_client, p_holder, p_exclusive, now() + p_lease)
    ON CONFLICT (client_id, holder) DO UPDATE SET exclusive = EXCLUDED.exclusive, expires_at = EXCLUDED.expires_at;
    IF p_exclusive THEN
        RETURN NOT EXISTS (SELECT 1 FROM client_payment_leases WHERE client_id = p_client AND holder <> p_holder);
    END IF;
    RETURN true;
END $$;

-- Payments still waiting for the payer's 3-D Secure: a later charge of the
-- same client cancels them first (activities/paylock.go).
CREATE INDEX payments_awaiting_action ON payments(client_id) WHERE status = 'requires_action';
