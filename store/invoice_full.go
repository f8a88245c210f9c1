package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

// InvoiceDetail is an invoice with its items, payments and refunds.
type InvoiceDetail struct {
	*Invoice
	Payments []*Payment
	Refunds  []*Refund
	// PayLinkDaysAfterDue is the practice's: how long after the due date
	// the invoice's pay link works (for its pay_url).
	PayLinkDaysAfterDue int32
}

// GetInvoiceDetail reads an invoice, its items, payments and refunds in one
// round trip (a pgx batch): the API's hottest read.
func (s *Store) GetInvoiceDetail(ctx context.Context, id string) (*InvoiceDetail, error) {
	b := &pgx.Batch{}
	b.Queue(`SELECT `+invoiceCols+` FROM invoices WHERE id=$1`, id)
	b.Queue(`SELECT service_date, description, cpt_code, modifiers, units, unit_amount, amount, diagnosis_codes, place_of_service
 FROM invoice_items WHERE invoice_id=$1 ORDER BY position`, id)
	b.Queue(`SELECT `+paymentCols+` FROM payments WHERE invoice_id=$1 ORDER BY created_at, id`, id)
	b.Queue(`SELECT `+refundCols+` FROM refunds WHERE invoice_id=$1 ORDER BY created_at, id`, id)
	b.Queue(`SELECT p.pay_link_days_after_due FROM practices p JOIN invoices i ON i.practice_id = p.id WHERE i.id=$1`, id)
	br := s.Pool.SendBatch(ctx, b)
	defer br.Close()
	inv, err := scanInvoice(br.QueryRow())
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			// Drain the remaining results before closing.
			for i := 0; i < 4; i++ {
				if rows, qerr := br.Query(); qerr == nil {
					rows.Close()
				}
			}
		}
		return nil, mapErr("get invoice "+id, err)
	}
	d := &InvoiceDetail{Invoice: inv}
	rows, err := br.Query()
	if err != nil {
		return nil, mapErr("get invoice items", err)
	}
	if inv.Items, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Item, error) {
		var it Item
		err := r.Scan(&it.ServiceDate, &it.Description, &it.CPTCode, &it.Modifiers, &it.Units, &it.UnitAmount, &it.Amount,
			&it.DiagnosisCodes, &it.PlaceOfService)
		return it, err
	}); err != nil {
		return nil, mapErr("get invoice items", err)
	}
	if rows, err = br.Query(); err != nil {
		return nil, mapErr("get invoice payments", err)
	}
	if d.Payments, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Payment, error) { return scanPayment(r) }); err != nil {
		return nil, mapErr("get invoice payments", err)
	}
	if rows, err = br.Query(); err != nil {
		return nil, mapErr("get invoice refunds", err)
	}
	if d.Refunds, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Refund, error) { return scanRefund(r) }); err != nil {
		return nil, mapErr("get invoice refunds", err)
	}
	if err := br.QueryRow().Scan(&d.PayLinkDaysAfterDue); err != nil {
		return nil, mapErr("get invoice practice", err)
	}
	return d, nil
}
