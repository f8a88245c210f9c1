package store

import (
	"context"
	"time"
)

// ListRemindable pages (by ID) through invoices with a balance that may owe a
// reminder by today: open or partially paid, due within the next 30 days or
// past due. The partial index invoices_open_due serves it. scope is one
// practice's ID, or "" for the practices without a namespace of their own.
func (s *Store) ListRemindable(ctx context.Context, scope string, today time.Time, afterID string, limit int) ([]string, error) {
	rows, err := s.Pool.Query(ctx, `SELECT id FROM invoices WHERE amount_due > 0 AND status IN ('open','partially_paid')
 AND due_date <= $1::date + 30 AND id > $2
 AND `+scopeClause("invoices.practice_id", 4)+` ORDER BY id LIMIT $3`, today, afterID, limit, scope)
	if err != nil {
		return nil, mapErr("list remindable", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, mapErr("list remindable", err)
		}
		ids = append(ids, id)
	}
	return ids, mapErr("list remindable", rows.Err())
}

// RecordReminder notes that a reminder step went out (once per invoice and step).
func (s *Store) RecordReminder(ctx context.Context, invoiceID string, step int) error {
	_, err := s.Pool.Exec(ctx, `INSERT INTO reminders_sent (invoice_id, step) VALUES ($1,$2) ON CONFLICT DO NOTHING`, invoiceID, step)
	return mapErr("record reminder", err)
}

// RemindersSent lists the steps sent for an invoice.
func (s *Store) RemindersSent(ctx context.Context, invoiceID string) ([]int, error) {
	rows, err := s.Pool.Query(ctx, `SELECT step FROM reminders_sent WHERE invoice_id=$1 ORDER BY step`, invoiceID)
	if err != nil {
		return nil, mapErr("reminders sent", err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var n int
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}
