package store

import (
	"context"
	"time"
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
