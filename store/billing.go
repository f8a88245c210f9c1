package store

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
)

// CurrencyAmount is an amount due in one currency.
type CurrencyAmount struct {
	Currency  string `json:"currency"`
	AmountDue int64  `json:"amount_due"`
}

// ClientBilling is what a client's Billing & Payments page shows: the
// balance per currency, the invoices (open first) and the client's
// statements and superbills.
type ClientBilling struct {
	PracticeCurrency string
	Balances         []CurrencyAmount // one per currency with something due, by currency
	Invoices         []*Invoice       // open, processing and partially paid first; then paid and refunded; newest first in each
	Statements       []*Document      // newest first
	Superbills       []*Document      // newest first
}

// Balance is the amount due in the practice's currency (0 if nothing is due).
func (b *ClientBilling) Balance() CurrencyAmount {
	for _, c := range b.Balances {
		if c.Currency == b.PracticeCurrency {
			return c
		}
	}
	return CurrencyAmount{Currency: b.PracticeCurrency}
}

// The queries of ClientBilling. Void and draft invoices are not the client's
// business: a void one is owed by nobody, a draft was never sent.
const (
	billingPracticeCurrency = `SELECT currency FROM practices WHERE id=$1`
	billingBalances         = `SELECT currency, SUM(amount_due)::bigint FROM invoices
 WHERE practice_id=$1 AND client_id=$2 AND status NOT IN ('void','draft') AND amount_due > 0
 GROUP BY currency ORDER BY currency`
	billingInvoices = `SELECT ` + invoiceCols + ` FROM invoices
 WHERE practice_id=$1 AND client_id=$2 AND status NOT IN ('void','draft')
 ORDER BY (status IN ('open','partially_paid','processing')) DESC, created_at DESC, id DESC`
	billingDocuments = `SELECT ` + documentCols + ` FROM documents
 WHERE practice_id=$1 AND client_id=$2 AND kind IN ('statement','superbill') ORDER BY created_at DESC, id DESC`
)

// ClientBilling reads a client's billing overview in one round trip (a pgx
// batch). Callers have checked the client belongs to the practice.
func (s *Store) ClientBilling(ctx context.Context, practiceID, clientID string) (*ClientBilling, error) {
	b := &pgx.Batch{}
	out := &ClientBilling{Balances: []CurrencyAmount{}, Invoices: []*Invoice{}, Statements: []*Document{}, Superbills: []*Document{}}
	b.Queue(billingPracticeCurrency, practiceID).QueryRow(func(r pgx.Row) error { return r.Scan(&out.PracticeCurrency) })
	b.Queue(billingBalances, practiceID, clientID).Query(func(rows pgx.Rows) error {
		var err error
		out.Balances, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (CurrencyAmount, error) {
			var c CurrencyAmount
			return c, r.Scan(&c.Currency, &c.AmountDue)
		})
		return err
	})
	b.Queue(billingInvoices, practiceID, clientID).Query(func(rows pgx.Rows) error {
		var err error
		out.Invoices, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Invoice, error) { return scanInvoice(r) })
		return err
	})
	b.Queue(billingDocuments, practiceID, clientID).Query(func(rows pgx.Rows) error {
		docs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Document, error) { return scanDocument(r) })
		for _, d := range docs {
			if d.Kind == "statement" {
				out.Statements = append(out.Statements, d)
			} else {
				out.Superbills = append(out.Superbills, d)
			}
		}
		return err
	})
	if err := s.Pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, mapErr("client billing "+clientID, err)
	}
	if out.Balances == nil {
		out.Balances = []CurrencyAmount{}
	}
	if out.Invoices == nil {
		out.Invoices = []*Invoice{}
	}
	return out, nil
}

// HistoryKind is the kind of an account-history entry.
type HistoryKind string

// The kinds of account-history entries, in the order they sort within a day.
const (
	HistorySession HistoryKind = "session"
	HistoryPayment HistoryKind = "payment"
	HistoryRefund  HistoryKind = "refund"
)

func (k HistoryKind) rank() int {
	switch k {
	case HistorySession:
		return 0
	case HistoryPayment:
		return 1
	}
	return 2
}

// HistoryEntry is one line of a client's account history: a billed session
// (an invoice item), a payment, or a refund.
type HistoryEntry struct {
	Date          time.Time // the service date, or the day (in the practice's timezone) money moved
	Kind          HistoryKind
	InvoiceID     string
	InvoiceNumber string
	InvoiceStatus InvoiceStatus // the invoice's status now: a session shows whether it is paid
	Amount        int64
	Currency      string
	At            time.Time // orders entries within a day and kind

	// session
	Description string
	CPTCode     string
	Units       int64
	position    int32

	// payment and refund
	PaymentID  string
	RefundID   string
	Status     string
	MethodType string
	Brand      string
	Last4      string
	BankName   string
	PayerName  string
	Reason     string
}

// The queries of AccountHistory. Sessions of void and draft invoices were
// never owed; only payments that took (or are taking) money count, and
// refunds that did not fail.
const (
	historySessions = `SELECT it.service_date, i.id, i.number, i.status, it.amount, i.currency, i.created_at, it.description, it.cpt_code,
 it.units, it.position
 FROM invoice_items it JOIN invoices i ON i.id = it.invoice_id
 WHERE i.practice_id=$1 AND i.client_id=$2 AND i.status NOT IN ('void','draft') AND it.service_date BETWEEN $3 AND $4`
	historyPayments = `SELECT (p.created_at AT TIME ZONE $5)::date, i.id, i.number, i.status, p.amount, p.currency, p.created_at, p.id,
 p.status, p.method_type, p.brand, p.last4, p.bank_name, p.payer_name
 FROM payments p JOIN invoices i ON i.id = p.invoice_id
 WHERE p.practice_id=$1 AND p.client_id=$2 AND p.status IN ('succeeded','processing')
 AND (p.created_at AT TIME ZONE $5)::date BETWEEN $3 AND $4`
	historyRefunds = `SELECT (r.created_at AT TIME ZONE $5)::date, i.id, i.number, i.status, r.amount, r.currency, r.created_at, r.id,
 r.payment_id, r.status, r.reason
 FROM refunds r JOIN invoices i ON i.id = r.invoice_id
 WHERE r.practice_id=$1 AND i.client_id=$2 AND r.status <> 'failed'
 AND (r.created_at AT TIME ZONE $5)::date BETWEEN $3 AND $4`
)

// AccountHistory lists a client's sessions, payments and refunds dated from
// from to to (inclusive; payments and refunds by their day in timezone),
// sorted by date, then session before payment before refund, then time.
// One round trip (a pgx batch).
func (s *Store) AccountHistory(ctx context.Context, practiceID, clientID, timezone string, from, to time.Time) ([]HistoryEntry, error) {
	if _, err := time.LoadLocation(timezone); err != nil || timezone == "" {
		timezone = "UTC"
	}
	fromD := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, time.UTC)
	toD := time.Date(to.Year(), to.Month(), to.Day(), 0, 0, 0, 0, time.UTC)
	var out []HistoryEntry
	b := &pgx.Batch{}
	b.Queue(historySessions, practiceID, clientID, fromD, toD).Query(func(rows pgx.Rows) error {
		es, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (HistoryEntry, error) {
			e := HistoryEntry{Kind: HistorySession}
			return e, r.Scan(&e.Date, &e.InvoiceID, &e.InvoiceNumber, &e.InvoiceStatus, &e.Amount, &e.Currency, &e.At, &e.Description, &e.CPTCode,
				&e.Units, &e.position)
		})
		out = append(out, es...)
		return err
	})
	b.Queue(historyPayments, practiceID, clientID, fromD, toD, timezone).Query(func(rows pgx.Rows) error {
		es, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (HistoryEntry, error) {
			e := HistoryEntry{Kind: HistoryPayment}
			return e, r.Scan(&e.Date, &e.InvoiceID, &e.InvoiceNumber, &e.InvoiceStatus, &e.Amount, &e.Currency, &e.At, &e.PaymentID, &e.Status,
				&e.MethodType, &e.Brand, &e.Last4, &e.BankName, &e.PayerName)
		})
		out = append(out, es...)
		return err
	})
	b.Queue(historyRefunds, practiceID, clientID, fromD, toD, timezone).Query(func(rows pgx.Rows) error {
		es, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (HistoryEntry, error) {
			e := HistoryEntry{Kind: HistoryRefund}
			return e, r.Scan(&e.Date, &e.InvoiceID, &e.InvoiceNumber, &e.InvoiceStatus, &e.Amount, &e.Currency, &e.At, &e.RefundID, &e.PaymentID,
				&e.Status, &e.Reason)
		})
		out = append(out, es...)
		return err
	})
	if err := s.Pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, mapErr(fmt.Sprintf("account history %s %s..%s", clientID, fromD.Format(time.DateOnly), toD.Format(time.DateOnly)), err)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		if !a.Date.Equal(b.Date) {
			return a.Date.Before(b.Date)
		}
		if a.Kind != b.Kind {
			return a.Kind.rank() < b.Kind.rank()
		}
		if !a.At.Equal(b.At) {
			return a.At.Before(b.At)
		}
		if a.InvoiceNumber != b.InvoiceNumber {
			return a.InvoiceNumber < b.InvoiceNumber
		}
		if a.position != b.position {
			return a.position < b.position
		}
		return a.PaymentID+a.RefundID < b.PaymentID+b.RefundID
	})
	if out == nil {
		out = []HistoryEntry{}
	}
	return out, nil
}
