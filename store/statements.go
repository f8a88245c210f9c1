package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Account lines read the ledger by the date a client sees on paper: an
// invoice on its issue date, every other entry on the practice-local date it
// was written. Opening balance, lines and closing balance all use this one
// date, so closing = opening + lines always holds.
const ledgerDated = `SELECT le.id, le.kind, le.amount, le.invoice_id, i.number, COALESCE(le.payment_id,'') AS payment_id,
 COALESCE(le.refund_id,'') AS refund_id,
 CASE WHEN le.kind='invoice' THEN i.issue_date ELSE (le.created_at AT TIME ZONE p.timezone)::date END AS d
 FROM ledger_entries le JOIN invoices i ON i.id=le.invoice_id JOIN practices p ON p.id=le.practice_id
 WHERE le.practice_id=$1 AND le.client_id=$2 AND le.currency=$3`

// AccountLine is one dated movement of a client's balance. A refund is one
// line: the money returned (Refunded) and its net effect on what the client
// owes (Amount: zero for a refund of a settled invoice, since the invoice is
// credited back; positive when it returned an overpayment's credit).
type AccountLine struct {
	Date          time.Time
	Kind          string // invoice | void | payment | payment_reversal | refund
	InvoiceID     string
	InvoiceNumber string
	PaymentID     string
	RefundID      string
	Amount        int64 // effect on the balance: charges positive, payments negative
	Refunded      int64 // refund lines: the money returned to the client
	MethodType    string
	Brand         string
	Last4         string
	BankName      string
	Reason        string // refund reason as the practitioner wrote it
}

// Account is a client's ledger in one currency over a period [From, To].
type Account struct {
	PracticeID     string
	ClientID       string
	Currency       string
	From, To       time.Time
	OpeningBalance int64 // every entry dated before From
	ClosingBalance int64 // OpeningBalance plus the lines
	Lines          []AccountLine
}

// ClientAccount reads a client's statement data: the opening balance, each
// dated entry in the period (refund and refund credit grouped as one line),
// and the closing balance.
func (s *Store) ClientAccount(ctx context.Context, practiceID, clientID, currency string, from, to time.Time) (*Account, error) {
	acc := &Account{PracticeID: practiceID, ClientID: clientID, Currency: currency, From: from, To: to}
	const opening = `WITH e AS (` + ledgerDated + `) SELECT COALESCE(SUM(amount),0) FROM e WHERE d < $4::date`
	if err := s.Pool.QueryRow(ctx, opening, practiceID, clientID, currency, from).Scan(&acc.OpeningBalance); err != nil {
		return nil, mapErr("account opening balance", err)
	}
	const lines = `WITH e AS (` + ledgerDated + `),
 g AS (SELECT d, CASE WHEN kind IN ('refund','refund_credit') THEN 'refund' ELSE kind END AS k, invoice_id, number,
  payment_id, refund_id, SUM(amount) AS amount, COALESCE(SUM(amount) FILTER (WHERE kind='refund'),0) AS refunded, MIN(id) AS first
  FROM e WHERE d BETWEEN $4::date AND $5::date
  GROUP BY d, k, invoice_id, number, payment_id, refund_id)
SELECT g.d, g.k, g.invoice_id, g.number, g.payment_id, g.refund_id, g.amount, g.refunded,
 COALESCE(pay.method_type,''), COALESCE(pay.brand,''), COALESCE(pay.last4,''), COALESCE(pay.bank_name,''), COALESCE(r.reason,'')
 FROM g LEFT JOIN payments pay ON pay.id=NULLIF(g.payment_id,'') LEFT JOIN refunds r ON r.id=NULLIF(g.refund_id,'')
 ORDER BY g.d, g.first`
	rows, err := s.Pool.Query(ctx, lines, practiceID, clientID, currency, from, to)
	if err != nil {
		return nil, mapErr("account lines", err)
	}
	acc.Lines, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (AccountLine, error) {
		var l AccountLine
		err := r.Scan(&l.Date, &l.Kind, &l.InvoiceID, &l.InvoiceNumber, &l.PaymentID, &l.RefundID, &l.Amount, &l.Refunded,
			&l.MethodType, &l.Brand, &l.Last4, &l.BankName, &l.Reason)
		return l, err
	})
	if err != nil {
		return nil, mapErr("account lines", err)
	}
	acc.ClosingBalance = acc.OpeningBalance
	for _, l := range acc.Lines {
		acc.ClosingBalance += l.Amount
	}
	return acc, nil
}

// ClientCurrencies lists the currencies of a client's invoices, the most used
// first, so a statement or superbill can default to the one that matters.
func (s *Store) ClientCurrencies(ctx context.Context, practiceID, clientID string) ([]string, error) {
	rows, err := s.Pool.Query(ctx, `SELECT currency FROM invoices WHERE practice_id=$1 AND client_id=$2
 GROUP BY currency ORDER BY count(*) DESC, currency`, practiceID, clientID)
	if err != nil {
		return nil, mapErr("client currencies", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return out, mapErr("client currencies", err)
}

// SuperbillItem is one billed service in a superbill's period, with the part
// of its invoice's net payments that falls to it.
type SuperbillItem struct {
	InvoiceID     string
	InvoiceNumber string
	Item
	Paid int64
}

// SuperbillItems lists a client's services with a service date in [from, to]
// in one currency, oldest first. Void and fully refunded invoices are left
// out: nothing was paid for them. Each item's Paid is its invoice's net
// payments (paid minus refunded, at most the total) pro-rated over the
// invoice's items by amount in integer math, the remainder going to the
// earliest items, so a paid invoice's items are each paid exactly.
func (s *Store) SuperbillItems(ctx context.Context, practiceID, clientID, currency string, from, to time.Time) ([]SuperbillItem, error) {
	const q = `SELECT i.id, i.number, i.total, i.amount_paid - i.amount_refunded, it.position, it.service_date, it.description,
 it.cpt_code, it.modifiers, it.units, it.unit_amount, it.amount, it.diagnosis_codes, it.place_of_service
 FROM invoices i JOIN invoice_items it ON it.invoice_id=i.id
 WHERE i.practice_id=$1 AND i.client_id=$2 AND i.currency=$3 AND i.status NOT IN ('draft','void','refunded')
 AND EXISTS (SELECT 1 FROM invoice_items x WHERE x.invoice_id=i.id AND x.service_date BETWEEN $4::date AND $5::date)
 ORDER BY i.issue_date, i.id, it.position`
	rows, err := s.Pool.Query(ctx, q, practiceID, clientID, currency, from, to)
	if err != nil {
		return nil, mapErr("superbill items", err)
	}
	type row struct {
		SuperbillItem
		total, net int64
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		var pos int32
		err := r.Scan(&x.InvoiceID, &x.InvoiceNumber, &x.total, &x.net, &pos, &x.ServiceDate, &x.Description, &x.CPTCode,
			&x.Modifiers, &x.Units, &x.UnitAmount, &x.Amount, &x.DiagnosisCodes, &x.PlaceOfService)
		return x, err
	})
	if err != nil {
		return nil, mapErr("superbill items", err)
	}
	var out []SuperbillItem
	for start := 0; start < len(all); {
		end := start
		for end < len(all) && all[end].InvoiceID == all[start].InvoiceID {
			end++
		}
		inv := all[start:end]
		amounts := make([]int64, len(inv))
		for i, x := range inv {
			amounts[i] = x.Amount
		}
		paid := ProRate(min(max(inv[0].net, 0), inv[0].total), amounts)
		for i, x := range inv {
			if x.ServiceDate.Before(from) || x.ServiceDate.After(to) {
				continue
			}
			x.SuperbillItem.Paid = paid[i]
			out = append(out, x.SuperbillItem)
		}
		start = end
	}
	return out, nil
}

// ProRate splits amount over parts in proportion to their sizes, in integer
// math: each part gets the floor of its share, and the units left over go one
// each to the earliest parts that still have room. When amount equals the
// parts' sum every part gets exactly its size; no part ever gets more than its size.
func ProRate(amount int64, parts []int64) []int64 {
	out := make([]int64, len(parts))
	var sum int64
	for _, p := range parts {
		sum += p
	}
	if sum <= 0 || amount <= 0 {
		return out
	}
	amount = min(amount, sum)
	var given int64
	for i, p := range parts {
		// p*amount fits in int64: both are bounded by 99,999,999 × 200 items.
		out[i] = p * amount / sum
		given += out[i]
	}
	for left := amount - given; left > 0; {
		moved := false
		for i := range out {
			if left == 0 {
				break
			}
			if out[i] < parts[i] {
				out[i]++
				left--
				moved = true
			}
		}
		if !moved {
			break
		}
	}
	return out
}

// StatementClient is a client with ledger activity in a period and the
// currencies it moved in.
type StatementClient struct {
	PracticeID string
	ClientID   string
	Currencies []string
}

// StatementClients pages (by client ID, after afterClientID) through clients
// with any ledger entry dated in [from, to], by the same dates statements use.
// scope is one practice's ID, or "" for the practices without a namespace.
func (s *Store) StatementClients(ctx context.Context, scope string, from, to time.Time, afterClientID string, limit int) ([]StatementClient, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("statement clients: limit must be positive")
	}
	q := `SELECT le.practice_id, le.client_id, array_agg(DISTINCT le.currency ORDER BY le.currency)
 FROM ledger_entries le JOIN invoices i ON i.id=le.invoice_id JOIN practices p ON p.id=le.practice_id
 WHERE le.client_id > $3 AND (
  (le.kind='invoice' AND i.issue_date BETWEEN $1::date AND $2::date) OR
  (le.kind<>'invoice' AND le.created_at >= $1::date - 2 AND le.created_at < $2::date + 3
   AND (le.created_at AT TIME ZONE p.timezone)::date BETWEEN $1::date AND $2::date))
 AND ` + scopeClause("le.practice_id", 5) + `
 GROUP BY le.practice_id, le.client_id ORDER BY le.client_id LIMIT $4`
	rows, err := s.Pool.Query(ctx, q, from, to, afterClientID, limit, scope)
	if err != nil {
		return nil, mapErr("statement clients", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (StatementClient, error) {
		var c StatementClient
		err := r.Scan(&c.PracticeID, &c.ClientID, &c.Currencies)
		return c, err
	})
	return out, mapErr("statement clients", err)
}

// PeriodDocuments lists a client's documents of one kind for exactly the
// period [from, to], newest first: what a statement run produced for a month.
func (s *Store) PeriodDocuments(ctx context.Context, practiceID, clientID, kind string, from, to time.Time) ([]*Document, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+documentCols+` FROM documents WHERE practice_id=$1 AND client_id=$2 AND kind=$3
 AND period_from=$4::date AND period_to=$5::date ORDER BY created_at DESC, id`, practiceID, clientID, kind, from, to)
	if err != nil {
		return nil, mapErr("period documents", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Document, error) { return scanDocument(r) })
	return out, mapErr("period documents", err)
}

// Filename is how a document is named when downloaded or attached:
// "INV-0001.pdf", "Receipt INV-0001.pdf", "Statement 2026-10.pdf",
// "Superbill 2026-10-01 to 2026-12-31.pdf". invoiceNumber is the number of
// the document's invoice, if it has one.
func (d *Document) Filename(invoiceNumber string) string {
	switch d.Kind {
	case "invoice", "receipt":
		name := invoiceNumber
		if name == "" {
			name = d.ID
		}
		if d.Kind == "receipt" {
			name = "Receipt " + name
		}
		return name + ".pdf"
	}
	name := "Statement"
	if d.Kind == "superbill" {
		name = "Superbill"
	}
	if d.PeriodFrom != nil && d.PeriodTo != nil {
		from, to := *d.PeriodFrom, *d.PeriodTo
		if from.Day() == 1 && to.Equal(from.AddDate(0, 1, -1)) {
			name += " " + from.Format("2006-01")
		} else {
			name += " " + from.Format(time.DateOnly) + " to " + to.Format(time.DateOnly)
		}
	}
	return name + ".pdf"
}

// EmailStatusOf is where one logical email stands, or ErrNotFound if it was
// never attempted: a statement run uses it to pass over clients already done.
func (s *Store) EmailStatusOf(ctx context.Context, messageID string) (EmailStatus, error) {
	var st EmailStatus
	err := s.Pool.QueryRow(ctx, `SELECT status FROM emails WHERE message_id=$1`, messageID).Scan(&st)
	return st, mapErr("email status", err)
}
