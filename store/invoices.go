package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/billflow/billflow/contract"
)

// InvoiceStatus is an invoice's place in its lifecycle (contract's).
type InvoiceStatus = contract.InvoiceStatus

// The invoice statuses, as stored and as the API and search attributes show them.
const (
	StatusOpen              = contract.InvoiceOpen
	StatusProcessing        = contract.InvoiceProcessing
	StatusPartiallyPaid     = contract.InvoicePartiallyPaid
	StatusPaid              = contract.InvoicePaid
	StatusPartiallyRefunded = contract.InvoicePartiallyRefunded
	StatusRefunded          = contract.InvoiceRefunded
	StatusVoid              = contract.InvoiceVoid
)

// Item is one billed service line.
type Item struct {
	ServiceDate    time.Time `json:"service_date"`
	Description    string    `json:"description"`
	CPTCode        string    `json:"cpt_code,omitempty"`
	Modifiers      []string  `json:"modifiers,omitempty"`
	Units          int64     `json:"units"`
	UnitAmount     int64     `json:"unit_amount"`
	Amount         int64     `json:"amount"`
	DiagnosisCodes []string  `json:"diagnosis_codes,omitempty"`
	PlaceOfService string    `json:"place_of_service,omitempty"`
}

// PartialPayments are the invoice's installment terms.
type PartialPayments struct {
	Enabled         bool  `json:"enabled"`
	MinimumAmount   int64 `json:"minimum_amount,omitempty"`
	MinimumPercent  int32 `json:"minimum_percent,omitempty"`
	MaxInstallments int32 `json:"max_installments"`
}

// Invoice is the read model the API serves and the workflow keeps current.
type Invoice struct {
	ID               string          `json:"id"`
	PracticeID       string          `json:"practice_id"`
	ClientID         string          `json:"client_id"`
	Number           string          `json:"number"`
	Status           InvoiceStatus   `json:"status"`
	Currency         string          `json:"currency"`
	IssueDate        time.Time       `json:"issue_date"`
	DueDate          time.Time       `json:"due_date"`
	Subtotal         int64           `json:"subtotal"`
	Total            int64           `json:"total"`
	AmountPaid       int64           `json:"amount_paid"`
	AmountRefunded   int64           `json:"amount_refunded"`
	AmountDue        int64           `json:"amount_due"`
	AmountProcessing int64           `json:"amount_processing"`
	PartialPayments  PartialPayments `json:"partial_payments"`
	Memo             string          `json:"memo"`
	CreatedAt        time.Time       `json:"created_at"`
	PaidAt           *time.Time      `json:"paid_at,omitempty"`
	VoidedAt         *time.Time      `json:"voided_at,omitempty"`
	Items            []Item          `json:"items"`
}

// MinimumPayment is the smallest installment the invoice accepts.
func (inv *Invoice) MinimumPayment() int64 {
	pp := inv.PartialPayments
	switch {
	case pp.MinimumAmount > 0:
		return pp.MinimumAmount
	case pp.MinimumPercent > 0:
		return (inv.Total*int64(pp.MinimumPercent) + 99) / 100
	}
	return 1
}

const invoiceCols = `id, practice_id, client_id, number, status, currency, issue_date, due_date, subtotal, total,
 amount_paid, amount_refunded, amount_due, amount_processing, partial_enabled, COALESCE(partial_min_amount,0),
 COALESCE(partial_min_percent,0), max_installments, memo, created_at, paid_at, voided_at`

func scanInvoice(row pgx.Row) (*Invoice, error) {
	var inv Invoice
	err := row.Scan(&inv.ID, &inv.PracticeID, &inv.ClientID, &inv.Number, &inv.Status, &inv.Currency, &inv.IssueDate,
		&inv.DueDate, &inv.Subtotal, &inv.Total, &inv.AmountPaid, &inv.AmountRefunded, &inv.AmountDue, &inv.AmountProcessing,
		&inv.PartialPayments.Enabled, &inv.PartialPayments.MinimumAmount, &inv.PartialPayments.MinimumPercent,
		&inv.PartialPayments.MaxInstallments, &inv.Memo, &inv.CreatedAt, &inv.PaidAt, &inv.VoidedAt)
	if err != nil {
		return nil, err
	}
	return &inv, nil
}

// NewInvoice is a validated invoice to persist; amounts are computed here.
type NewInvoice struct {
	ID              string
	PracticeID      string
	ClientID        string
	Currency        string
	IssueDate       time.Time
	DueDate         time.Time
	Items           []Item
	PartialPayments PartialPayments
	Memo            string
	// CreationKey is the request that creates it: the caller's idempotency
	// scope and key. The same key again finds this invoice instead of making
	// another (CreateInvoiceOnce). Empty: no key, always a new invoice.
	CreationKey string
}

// requestHash is what the invoice asks for, to tell a retry of its request
// from another request reusing the key. The issue date is left out: it is
// the day the request runs, and a retry after midnight is the same request.
func (in *NewInvoice) requestHash() string {
	type item struct {
		ServiceDate, Description, CPTCode, PlaceOfService string
		Modifiers, DiagnosisCodes                         []string
		Units, UnitAmount                                 int64
	}
	v := struct {
		ClientID, Currency, DueDate, Memo string
		Partial                           PartialPayments
		Items                             []item
	}{ClientID: in.ClientID, Currency: in.Currency, DueDate: in.DueDate.Format(time.DateOnly), Memo: in.Memo,
		Partial: in.PartialPayments}
	for _, it := range in.Items {
		v.Items = append(v.Items, item{ServiceDate: it.ServiceDate.Format(time.DateOnly), Description: it.Description,
			CPTCode: it.CPTCode, PlaceOfService: it.PlaceOfService, Modifiers: nonNil(it.Modifiers),
			DiagnosisCodes: nonNil(it.DiagnosisCodes), Units: it.Units, UnitAmount: it.UnitAmount})
	}
	b, _ := json.Marshal(v) // plain strings, numbers and slices: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// errCreatedAlready rolls back an insert that found its creation key taken.
var errCreatedAlready = errors.New("invoice created already under this key")

// CreateInvoice numbers the invoice within its practice, stores it open with
// its items, and writes the ledger's opening entry, in one transaction.
func (s *Store) CreateInvoice(ctx context.Context, in NewInvoice) (*Invoice, error) {
	inv, _, err := s.CreateInvoiceOnce(ctx, in)
	return inv, err
}

// CreateInvoiceOnce is CreateInvoice under in.CreationKey: when the
// practice already has an invoice made with that key it returns that one
// (created false) and writes nothing, so the retry of a request whose
// workflow start failed answers the same invoice with the same number. The
// key with a different invoice is ErrKeyReused.
func (s *Store) CreateInvoiceOnce(ctx context.Context, in NewInvoice) (*Invoice, bool, error) {
	if in.ID == "" {
		in.ID = NewID("inv")
	}
	var total int64
	for i := range in.Items {
		in.Items[i].Amount = in.Items[i].UnitAmount * in.Items[i].Units
		total += in.Items[i].Amount
	}
	maxInst := in.PartialPayments.MaxInstallments
	if maxInst == 0 {
		maxInst = 2
	}
	if !in.PartialPayments.Enabled {
		maxInst = 1
	}
	var key, hash any // NULL without a key: no uniqueness to keep
	if in.CreationKey != "" {
		key, hash = in.CreationKey, in.requestHash()
	}
	var inv *Invoice
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		// Locks the practice row too: creates with one key take turns, and the
		// second finds the first's row through ON CONFLICT.
		var seq int64
		if err := tx.QueryRow(ctx, `UPDATE practices SET invoice_seq = invoice_seq + 1 WHERE id=$1 RETURNING invoice_seq`, in.PracticeID).Scan(&seq); err != nil {
			return err
		}
		const q = `INSERT INTO invoices (id, practice_id, client_id, number, currency, status, issue_date, due_date, subtotal, total,
 amount_due, partial_enabled, partial_min_amount, partial_min_percent, max_installments, memo, creation_key, creation_hash)
 VALUES ($1,$2,$3,$4,$5,'open',$6,$7,$8,$8,$8,$9,NULLIF($10::bigint,0),NULLIF($11::int,0),$12,$13,$14,$15)
 ON CONFLICT ON CONSTRAINT invoices_creation_key DO NOTHING RETURNING ` + invoiceCols
		var err error
		inv, err = scanInvoice(tx.QueryRow(ctx, q, in.ID, in.PracticeID, in.ClientID, fmt.Sprintf("INV-%04d", seq), in.Currency,
			in.IssueDate, in.DueDate, total, in.PartialPayments.Enabled, in.PartialPayments.MinimumAmount,
			in.PartialPayments.MinimumPercent, maxInst, in.Memo, key, hash))
		if errors.Is(err, pgx.ErrNoRows) {
			return errCreatedAlready // rolls back the number taken above
		}
		if err != nil {
			return err
		}
		for i, it := range in.Items {
			_, err := tx.Exec(ctx, `INSERT INTO invoice_items (invoice_id, position, service_date, description, cpt_code, modifiers,
 units, unit_amount, amount, diagnosis_codes, place_of_service) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)`,
				inv.ID, i+1, it.ServiceDate, it.Description, it.CPTCode, nonNil(it.Modifiers), it.Units, it.UnitAmount, it.Amount,
				nonNil(it.DiagnosisCodes), it.PlaceOfService)
			if err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO ledger_entries (practice_id, client_id, invoice_id, kind, amount, currency, entry_key)
 VALUES ($1,$2,$3,'invoice',$4,$5,$6)`, inv.PracticeID, inv.ClientID, inv.ID, total, inv.Currency, "invoice:"+inv.ID)
		return err
	})
	if errors.Is(err, errCreatedAlready) {
		var id, was string
		err = s.Pool.QueryRow(ctx, `SELECT id, creation_hash FROM invoices WHERE practice_id=$1 AND creation_key=$2`,
			in.PracticeID, in.CreationKey).Scan(&id, &was)
		if err != nil {
			return nil, false, mapErr("find invoice by creation key", err)
		}
		if was != hash {
			return nil, false, fmt.Errorf("invoice %s was created with this key for a different invoice: %w", id, ErrKeyReused)
		}
		inv, err = s.GetInvoice(ctx, id)
		return inv, false, err
	}
	if err != nil {
		return nil, false, mapErr("create invoice", err)
	}
	inv.Items = in.Items
	return inv, true, nil
}

// MarkInvoiceWorkflowStarted records that the invoice's workflow is
// started, which takes it off the reconciler's list.
func (s *Store) MarkInvoiceWorkflowStarted(ctx context.Context, id string) error {
	_, err := s.Pool.Exec(ctx, `UPDATE invoices SET workflow_started_at=now() WHERE id=$1 AND workflow_started_at IS NULL`, id)
	return mapErr("mark invoice workflow started "+id, err)
}

// UnstartedInvoices lists open invoices created through the API before
// `before` whose workflow start was never confirmed: the API process died
// (or Temporal failed) between the row and the start, and no retry came.
// scope is one practice's ID, or "" for the practices without a namespace.
func (s *Store) UnstartedInvoices(ctx context.Context, scope string, before time.Time, limit int) ([]*Invoice, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+invoiceCols+` FROM invoices
 WHERE workflow_started_at IS NULL AND creation_key IS NOT NULL AND created_at < $1
   AND status IN ('open','processing','partially_paid')
   AND `+scopeClause("invoices.practice_id", 3)+`
 ORDER BY created_at LIMIT $2`, before, limit, scope)
	if err != nil {
		return nil, mapErr("unstarted invoices", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Invoice, error) { return scanInvoice(r) })
	return out, mapErr("unstarted invoices", err)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// GetInvoiceRow reads an invoice without its items: its status, amounts
// and parties, for a charge or a refund that needs nothing else.
func (s *Store) GetInvoiceRow(ctx context.Context, id string) (*Invoice, error) {
	inv, err := scanInvoice(s.Pool.QueryRow(ctx, `SELECT `+invoiceCols+` FROM invoices WHERE id=$1`, id))
	return inv, mapErr("get invoice "+id, err)
}

// GetInvoice reads an invoice with its items. Callers scope by practice.
func (s *Store) GetInvoice(ctx context.Context, id string) (*Invoice, error) {
	inv, err := scanInvoice(s.Pool.QueryRow(ctx, `SELECT `+invoiceCols+` FROM invoices WHERE id=$1`, id))
	if err != nil {
		return nil, mapErr("get invoice "+id, err)
	}
	rows, err := s.Pool.Query(ctx, `SELECT service_date, description, cpt_code, modifiers, units, unit_amount, amount,
 diagnosis_codes, place_of_service FROM invoice_items WHERE invoice_id=$1 ORDER BY position`, id)
	if err != nil {
		return nil, mapErr("get invoice items", err)
	}
	inv.Items, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Item, error) {
		var it Item
		err := r.Scan(&it.ServiceDate, &it.Description, &it.CPTCode, &it.Modifiers, &it.Units, &it.UnitAmount, &it.Amount,
			&it.DiagnosisCodes, &it.PlaceOfService)
		return it, err
	})
	return inv, mapErr("get invoice items", err)
}

// InvoiceFilter selects a page of a practice's (or one client's) invoices.
type InvoiceFilter struct {
	PracticeID string
	ClientID   string
	Status     string
	After      string // cursor: the last invoice ID of the previous page
	Limit      int
}

// ListInvoices pages newest first by (created_at, id).
func (s *Store) ListInvoices(ctx context.Context, f InvoiceFilter) ([]*Invoice, error) {
	if f.Limit <= 0 || f.Limit > 100 {
		f.Limit = 25
	}
	const q = `SELECT ` + invoiceCols + ` FROM invoices i WHERE practice_id=$1
 AND ($2 = '' OR client_id=$2) AND ($3 = '' OR status=$3)
 AND ($4 = '' OR (created_at, id) < (SELECT created_at, id FROM invoices WHERE id=$4))
 ORDER BY created_at DESC, id DESC LIMIT $5`
	rows, err := s.Pool.Query(ctx, q, f.PracticeID, f.ClientID, f.Status, f.After, f.Limit)
	if err != nil {
		return nil, mapErr("list invoices", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Invoice, error) { return scanInvoice(r) })
	return out, mapErr("list invoices", err)
}

// refreshInvoice recomputes an invoice's amounts and status from its payments,
// refunds and ledger inside tx, so the read model can never drift from them.
// The refund statuses are for settled invoices: a refund on a partly paid
// invoice leaves it partially_paid with its balance still payable.
func refreshInvoice(ctx context.Context, tx pgx.Tx, id string) (*Invoice, error) {
	const q = `WITH p AS (
  SELECT COALESCE(SUM(amount) FILTER (WHERE status='succeeded'),0) AS paid,
         COALESCE(SUM(amount) FILTER (WHERE status='processing'),0) AS processing
  FROM payments WHERE invoice_id=$1),
 r AS (SELECT COALESCE(SUM(amount) FILTER (WHERE status='succeeded'),0) AS refunded FROM refunds WHERE invoice_id=$1),
 l AS (SELECT COALESCE(SUM(amount),0) AS balance FROM ledger_entries WHERE invoice_id=$1)
UPDATE invoices i SET
  amount_paid = p.paid, amount_processing = p.processing, amount_refunded = r.refunded,
  amount_due = GREATEST(l.balance - p.processing, 0),
  status = CASE
    WHEN i.status = 'void' THEN 'void'
    WHEN l.balance - p.processing <= 0 AND p.processing > 0 THEN 'processing'
    WHEN l.balance <= 0 AND r.refunded > 0 AND r.refunded >= p.paid THEN 'refunded'
    WHEN l.balance <= 0 AND r.refunded > 0 THEN 'partially_refunded'
    WHEN l.balance <= 0 THEN 'paid'
    WHEN p.paid > 0 THEN 'partially_paid'
    ELSE 'open' END,
  paid_at = CASE WHEN i.paid_at IS NULL AND l.balance <= 0 AND p.processing = 0 AND i.status <> 'void' THEN now() ELSE i.paid_at END,
  updated_at = now()
FROM p, r, l WHERE i.id=$1 RETURNING ` + invoiceCols
	return scanInvoice(tx.QueryRow(ctx, q, id))
}

// VoidInvoice voids an unpaid invoice: the balance is written off in the
// ledger and its pay links die. Paying or paid invoices are ErrConflict.
func (s *Store) VoidInvoice(ctx context.Context, id string) (*Invoice, error) {
	var inv *Invoice
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		cur, err := scanInvoice(tx.QueryRow(ctx, `SELECT `+invoiceCols+` FROM invoices WHERE id=$1 FOR UPDATE`, id))
		if err != nil {
			return err
		}
		if cur.Status == StatusVoid {
			inv = cur
			return nil
		}
		if cur.AmountPaid > 0 || cur.AmountProcessing > 0 {
			return fmt.Errorf("invoice has payments: %w", ErrConflict)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO ledger_entries (practice_id, client_id, invoice_id, kind, amount, currency, entry_key)
 SELECT practice_id, client_id, id, 'void', -(SELECT COALESCE(SUM(amount),0) FROM ledger_entries WHERE invoice_id=$1), currency, 'void:'||id
 FROM invoices WHERE id=$1 ON CONFLICT (entry_key) DO NOTHING`, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE invoices SET status='void', voided_at=now(), updated_at=now() WHERE id=$1`, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE pay_links SET revoked_at=now() WHERE invoice_id=$1 AND revoked_at IS NULL`, id); err != nil {
			return err
		}
		inv, err = refreshInvoice(ctx, tx, id)
		return err
	})
	return inv, mapErr("void invoice "+id, err)
}

// LedgerBalance sums an invoice's ledger entries.
func (s *Store) LedgerBalance(ctx context.Context, invoiceID string) (int64, error) {
	var b int64
	err := s.Pool.QueryRow(ctx, `SELECT COALESCE(SUM(amount),0) FROM ledger_entries WHERE invoice_id=$1`, invoiceID).Scan(&b)
	return b, mapErr("ledger balance", err)
}
