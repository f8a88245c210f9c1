package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// LockClientPayments takes or renews holder's lease on a client's payments
// (migration 0003) and reports whether holder may charge now. Invoice
// payments take it shared; a balance payment takes it exclusive, and while it
// waits for the shared holders to finish no new one starts. A retried charge
// (the same holder) takes its own lease again. A false answer may leave an
// exclusive holder's place in line: give it back with UnlockClientPayments
// when giving up.
func (s *Store) LockClientPayments(ctx context.Context, clientID, holder string, exclusive bool, lease time.Duration) (bool, error) {
	var ok bool
	err := s.Pool.QueryRow(ctx, `SELECT take_client_payment_lease($1, $2, $3, make_interval(secs => $4))`, clientID, holder, exclusive, lease.Seconds()).Scan(&ok)
	if err != nil {
		return false, mapErr("lease payments of client "+clientID, err)
	}
	return ok, nil
}

// UnlockClientPayments gives holder's lease on the client's payments back.
func (s *Store) UnlockClientPayments(ctx context.Context, clientID, holder string) error {
	_, err := s.Pool.Exec(ctx, `DELETE FROM client_payment_leases WHERE client_id=$1 AND holder=$2`, clientID, holder)
	return mapErr("give back payment lease of client "+clientID, err)
}

// AwaitingActionPayments lists a client's payments still waiting for the
// payer to finish 3-D Secure: on one invoice, or on all of them when
// invoiceID is "".
func (s *Store) AwaitingActionPayments(ctx context.Context, clientID, invoiceID string) ([]*Payment, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+paymentCols+` FROM payments
 WHERE client_id=$1 AND status='requires_action' AND ($2='' OR invoice_id=$2) ORDER BY created_at, id`, clientID, invoiceID)
	if err != nil {
		return nil, mapErr("payments awaiting action", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Payment, error) { return scanPayment(r) })
	return out, mapErr("payments awaiting action", err)
}
