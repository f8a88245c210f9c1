package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// OpenInvoicesOldestFirst lists a client's invoices with something due, in
// the order a balance payment pays them.
func (s *Store) OpenInvoicesOldestFirst(ctx context.Context, clientID string) ([]*Invoice, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+invoiceCols+` FROM invoices WHERE client_id=$1 AND amount_due > 0
 AND status IN ('open','partially_paid') ORDER BY issue_date, created_at, id`, clientID)
	if err != nil {
		return nil, mapErr("open invoices", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Invoice, error) { return scanInvoice(r) })
	return out, mapErr("open invoices", err)
}

// PaymentsOfBalance lists the per-invoice payments of one balance payment.
func (s *Store) PaymentsOfBalance(ctx context.Context, balancePaymentID string) ([]*Payment, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+paymentCols+` FROM payments WHERE balance_payment_id=$1 ORDER BY id`, balancePaymentID)
	if err != nil {
		return nil, mapErr("payments of balance", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Payment, error) { return scanPayment(r) })
	return out, mapErr("payments of balance", err)
}
