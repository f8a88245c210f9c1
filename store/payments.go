package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/billflow/billflow/contract"
)

// Payment is one charge applied to one invoice.
type Payment struct {
	ID                string                 `json:"id"`
	PracticeID        string                 `json:"-"`
	ClientID          string                 `json:"-"`
	InvoiceID         string                 `json:"invoice_id"`
	BalancePaymentID  string                 `json:"balance_payment_id,omitempty"`
	IdempotencyKey    string                 `json:"-"`
	Amount            int64                  `json:"amount"`
	Currency          string                 `json:"currency"`
	Status            contract.PaymentStatus `json:"status"`
	ProcessorIntentID string                 `json:"-"`
	MethodType        string                 `json:"method_type,omitempty"`
	Brand             string                 `json:"brand,omitempty"`
	Last4             string                 `json:"last4,omitempty"`
	BankName          string                 `json:"bank_name,omitempty"`
	PayerName         string                 `json:"payer_name,omitempty"`
	BillingZIP        string                 `json:"-"`
	FailureCode       string                 `json:"failure_code,omitempty"`
	DeclineCode       string                 `json:"decline_code,omitempty"`
	FailureMessage    string                 `json:"failure_message,omitempty"`
	AmountRefunded    int64                  `json:"amount_refunded"`
	CreatedAt         time.Time              `json:"created_at"`
	SucceededAt       *time.Time             `json:"succeeded_at,omitempty"`
}

const paymentCols = `id, practice_id, client_id, invoice_id, COALESCE(balance_payment_id,''), idempotency_key, amount, currency,
 status, COALESCE(processor_intent_id,''), method_type, brand, last4, bank_name, payer_name, billing_zip, failure_code,
 decline_code, failure_message, amount_refunded, created_at, succeeded_at`

func scanPayment(row pgx.Row) (*Payment, error) {
	var p Payment
	err := row.Scan(&p.ID, &p.PracticeID, &p.ClientID, &p.InvoiceID, &p.BalancePaymentID, &p.IdempotencyKey, &p.Amount,
		&p.Currency, &p.Status, &p.ProcessorIntentID, &p.MethodType, &p.Brand, &p.Last4, &p.BankName, &p.PayerName,
		&p.BillingZIP, &p.FailureCode, &p.DeclineCode, &p.FailureMessage, &p.AmountRefunded, &p.CreatedAt, &p.SucceededAt)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// paymentFinal says which statuses a payment never leaves.
func paymentFinal(s contract.PaymentStatus) bool { return s.Final() }

// RecordPayment stores a payment's latest known state and keeps the ledger and
// the invoice in step, in one transaction. It is idempotent: recording the
// same payment again (a retried activity, a webhook after the synchronous
// answer) changes nothing, and a final status is never overwritten.
func (s *Store) RecordPayment(ctx context.Context, p *Payment) (*Invoice, *Payment, error) {
	var inv *Invoice
	var out *Payment
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		// Lock the invoice first so concurrent writers serialize per invoice.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM invoices WHERE id=$1 FOR UPDATE`, p.InvoiceID); err != nil {
			return err
		}
		var err error
		if out, err = recordPaymentTx(ctx, tx, p); err != nil {
			return err
		}
		// The attempt behind it (store/attempts.go) follows its payment.
		if _, err := tx.Exec(ctx, `UPDATE payment_attempts SET status=$2, processor_intent_id=COALESCE(processor_intent_id, NULLIF($3,'')),
 failure_code=$4, decline_code=$5, failure_message=$6, updated_at=now()
 WHERE id=COALESCE(NULLIF($7,''), $1) AND status NOT IN ('succeeded','failed') AND status <> $2`,
			out.ID, out.Status, out.ProcessorIntentID, out.FailureCode, out.DeclineCode, out.FailureMessage, out.BalancePaymentID); err != nil {
			return err
		}
		inv, err = refreshInvoice(ctx, tx, p.InvoiceID)
		return err
	})
	if err != nil {
		return nil, nil, mapErr("record payment "+p.ID, err)
	}
	return inv, out, nil
}

// recordPaymentTx writes one payment and its ledger entry inside tx, which
// holds the invoice's row lock; the caller refreshes the invoice.
func recordPaymentTx(ctx context.Context, tx pgx.Tx, p *Payment) (*Payment, error) {
	const ins = `INSERT INTO payments (id, practice_id, client_id, invoice_id, balance_payment_id, idempotency_key, amount,
 currency, status, processor_intent_id, method_type, brand, last4, bank_name, payer_name, billing_zip, failure_code,
 decline_code, failure_message, succeeded_at)
 VALUES ($1,$2,$3,$4,NULLIF($5,''),$6,$7,$8,$9,NULLIF($10,''),$11,$12,$13,$14,$15,$16,$17,$18,$19,
  CASE WHEN $9='succeeded' THEN now() END)
 ON CONFLICT (id) DO NOTHING RETURNING ` + paymentCols
	cur, err := scanPayment(tx.QueryRow(ctx, ins, p.ID, p.PracticeID, p.ClientID, p.InvoiceID, p.BalancePaymentID,
		p.IdempotencyKey, p.Amount, p.Currency, p.Status, p.ProcessorIntentID, p.MethodType, p.Brand, p.Last4,
		p.BankName, p.PayerName, p.BillingZIP, p.FailureCode, p.DeclineCode, p.FailureMessage))
	if err == pgx.ErrNoRows {
		cur, err = scanPayment(tx.QueryRow(ctx, `SELECT `+paymentCols+` FROM payments WHERE id=$1 FOR UPDATE`, p.ID))
		if err != nil {
			return nil, err
		}
		if cur.InvoiceID != p.InvoiceID || cur.Amount != p.Amount {
			return nil, fmt.Errorf("payment %s recorded with other invoice or amount: %w", p.ID, ErrConflict)
		}
		if !paymentFinal(cur.Status) && cur.Status != p.Status {
			cur, err = scanPayment(tx.QueryRow(ctx, `UPDATE payments SET status=$2,
 processor_intent_id=COALESCE(processor_intent_id, NULLIF($3,'')), failure_code=$4, decline_code=$5, failure_message=$6,
 method_type=COALESCE(NULLIF($7,''), method_type), brand=COALESCE(NULLIF($8,''), brand), last4=COALESCE(NULLIF($9,''), last4),
 succeeded_at = CASE WHEN $2='succeeded' THEN now() ELSE succeeded_at END
 WHERE id=$1 RETURNING `+paymentCols, p.ID, p.Status, p.ProcessorIntentID, p.FailureCode, p.DeclineCode,
				p.FailureMessage, p.MethodType, p.Brand, p.Last4))
			if err != nil {
				return nil, err
			}
		}
	} else if err != nil {
		return nil, err
	}
	if cur.Status == contract.PaymentSucceeded {
		if _, err := tx.Exec(ctx, `INSERT INTO ledger_entries (practice_id, client_id, invoice_id, kind, amount, currency, payment_id, entry_key)
 VALUES ($1,$2,$3,'payment',$4,$5,$6,$7) ON CONFLICT (entry_key) DO NOTHING`,
			cur.PracticeID, cur.ClientID, cur.InvoiceID, -cur.Amount, cur.Currency, cur.ID, "payment:"+cur.ID); err != nil {
			return nil, err
		}
	}
	return cur, nil
}

// GetPayment reads one payment.
func (s *Store) GetPayment(ctx context.Context, id string) (*Payment, error) {
	p, err := scanPayment(s.Pool.QueryRow(ctx, `SELECT `+paymentCols+` FROM payments WHERE id=$1`, id))
	return p, mapErr("get payment "+id, err)
}

// PaymentByIntent finds the payments a processor PaymentIntent paid (several for a balance payment).
func (s *Store) PaymentsByIntent(ctx context.Context, intentID string) ([]*Payment, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+paymentCols+` FROM payments WHERE processor_intent_id=$1 ORDER BY created_at, id`, intentID)
	if err != nil {
		return nil, mapErr("payments by intent", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Payment, error) { return scanPayment(r) })
	return out, mapErr("payments by intent", err)
}

// ListPayments lists an invoice's payments, oldest first.
func (s *Store) ListPayments(ctx context.Context, invoiceID string) ([]*Payment, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+paymentCols+` FROM payments WHERE invoice_id=$1 ORDER BY created_at, id`, invoiceID)
	if err != nil {
		return nil, mapErr("list payments", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Payment, error) { return scanPayment(r) })
	return out, mapErr("list payments", err)
}

// Refund returns money from one payment.
type Refund struct {
	ID                string                `json:"id"`
	PracticeID        string                `json:"-"`
	InvoiceID         string                `json:"invoice_id"`
	PaymentID         string                `json:"payment_id"`
	IdempotencyKey    string                `json:"-"`
	Amount            int64                 `json:"amount"`
	Currency          string                `json:"currency"`
	Reason            string                `json:"reason,omitempty"`
	Status            contract.RefundStatus `json:"status"`
	ProcessorRefundID string                `json:"-"`
	CreatedAt         time.Time             `json:"created_at"`
}

const refundCols = `id, practice_id, invoice_id, payment_id, idempotency_key, amount, currency, reason, status, COALESCE(processor_refund_id,''), created_at`

func scanRefund(row pgx.Row) (*Refund, error) {
	var r Refund
	err := row.Scan(&r.ID, &r.PracticeID, &r.InvoiceID, &r.PaymentID, &r.IdempotencyKey, &r.Amount, &r.Currency, &r.Reason,
		&r.Status, &r.ProcessorRefundID, &r.CreatedAt)
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// RefundableAmount is what a payment still has to refund.
func (s *Store) RefundableAmount(ctx context.Context, paymentID string) (int64, error) {
	var left int64
	err := s.Pool.QueryRow(ctx, `SELECT amount - amount_refunded FROM payments WHERE id=$1 AND status='succeeded'`, paymentID).Scan(&left)
	return left, mapErr("refundable amount", err)
}

// RecordRefund stores a succeeded refund once, moves the payment's refunded
// amount (never past what it had), and writes the ledger: the refund itself,
// and a credit for whatever part of it was not overpayment, so a refunded
// invoice is not owed again.
func (s *Store) RecordRefund(ctx context.Context, r *Refund) (*Invoice, *Refund, error) {
	var inv *Invoice
	var out *Refund
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM invoices WHERE id=$1 FOR UPDATE`, r.InvoiceID); err != nil {
			return err
		}
		existing, err := scanRefund(tx.QueryRow(ctx, `SELECT `+refundCols+` FROM refunds WHERE id=$1`, r.ID))
		if err == nil {
			out = existing
			inv, err = refreshInvoice(ctx, tx, r.InvoiceID)
			return err
		} else if err != pgx.ErrNoRows {
			return err
		}
		var pay *Payment
		pay, err = scanPayment(tx.QueryRow(ctx, `SELECT `+paymentCols+` FROM payments WHERE id=$1 AND invoice_id=$2 FOR UPDATE`, r.PaymentID, r.InvoiceID))
		if err != nil {
			return err
		}
		if pay.Status != contract.PaymentSucceeded || pay.AmountRefunded+r.Amount > pay.Amount {
			return fmt.Errorf("refund %d exceeds the %d left on payment %s: %w", r.Amount, pay.Amount-pay.AmountRefunded, pay.ID, ErrConflict)
		}
		var balance int64
		if err := tx.QueryRow(ctx, `SELECT COALESCE(SUM(amount),0) FROM ledger_entries WHERE invoice_id=$1`, r.InvoiceID).Scan(&balance); err != nil {
			return err
		}
		out, err = scanRefund(tx.QueryRow(ctx, `INSERT INTO refunds (id, practice_id, invoice_id, payment_id, idempotency_key, amount,
 currency, reason, status, processor_refund_id) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,'succeeded',NULLIF($9,'')) RETURNING `+refundCols,
			r.ID, pay.PracticeID, r.InvoiceID, r.PaymentID, r.IdempotencyKey, r.Amount, pay.Currency, r.Reason, r.ProcessorRefundID))
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE payments SET amount_refunded = amount_refunded + $2 WHERE id=$1`, pay.ID, r.Amount); err != nil {
			return err
		}
		overpaid := min(max(-balance, 0), r.Amount)
		entries := []struct {
			kind   string
			amount int64
		}{{"refund", r.Amount}, {"refund_credit", -(r.Amount - overpaid)}}
		for _, e := range entries {
			if e.amount == 0 {
				continue
			}
			if _, err := tx.Exec(ctx, `INSERT INTO ledger_entries (practice_id, client_id, invoice_id, kind, amount, currency, payment_id, refund_id, entry_key)
 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)`, pay.PracticeID, pay.ClientID, r.InvoiceID, e.kind, e.amount, pay.Currency, pay.ID, r.ID,
				e.kind+":"+r.ID); err != nil {
				return err
			}
		}
		inv, err = refreshInvoice(ctx, tx, r.InvoiceID)
		return err
	})
	if err != nil {
		return nil, nil, mapErr("record refund "+r.ID, err)
	}
	return inv, out, nil
}

// ListRefunds lists an invoice's refunds, oldest first.
func (s *Store) ListRefunds(ctx context.Context, invoiceID string) ([]*Refund, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+refundCols+` FROM refunds WHERE invoice_id=$1 ORDER BY created_at, id`, invoiceID)
	if err != nil {
		return nil, mapErr("list refunds", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Refund, error) { return scanRefund(r) })
	return out, mapErr("list refunds", err)
}

// SavedPaymentMethod is a card or bank account a client kept for later.
type SavedPaymentMethod struct {
	ID             string    `json:"id"`
	PracticeID     string    `json:"-"`
	ClientID       string    `json:"client_id"`
	ProcessorPMID  string    `json:"-"`
	Type           string    `json:"type"`
	Brand          string    `json:"brand,omitempty"`
	Last4          string    `json:"last4"`
	ExpMonth       int32     `json:"exp_month,omitempty"`
	ExpYear        int32     `json:"exp_year,omitempty"`
	BankName       string    `json:"bank_name,omitempty"`
	CardholderName string    `json:"cardholder_name,omitempty"`
	BillingZIP     string    `json:"billing_zip,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
}

const pmCols = `id, practice_id, client_id, processor_pm_id, type, brand, last4, COALESCE(exp_month,0), COALESCE(exp_year,0), bank_name, cardholder_name, billing_zip, created_at`

func scanPM(row pgx.Row) (*SavedPaymentMethod, error) {
	var m SavedPaymentMethod
	err := row.Scan(&m.ID, &m.PracticeID, &m.ClientID, &m.ProcessorPMID, &m.Type, &m.Brand, &m.Last4, &m.ExpMonth, &m.ExpYear,
		&m.BankName, &m.CardholderName, &m.BillingZIP, &m.CreatedAt)
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// SavePaymentMethod keeps a processor payment method for a client, once.
func (s *Store) SavePaymentMethod(ctx context.Context, m *SavedPaymentMethod) (*SavedPaymentMethod, error) {
	if m.ID == "" {
		m.ID = NewID("spm")
	}
	const q = `INSERT INTO payment_methods (id, practice_id, client_id, processor_pm_id, type, brand, last4, exp_month, exp_year,
 bank_name, cardholder_name, billing_zip) VALUES ($1,$2,$3,$4,$5,$6,$7,NULLIF($8,0),NULLIF($9,0),$10,$11,$12)
 ON CONFLICT (client_id, processor_pm_id) DO UPDATE SET detached_at = NULL RETURNING ` + pmCols
	out, err := scanPM(s.Pool.QueryRow(ctx, q, m.ID, m.PracticeID, m.ClientID, m.ProcessorPMID, m.Type, m.Brand, m.Last4,
		m.ExpMonth, m.ExpYear, m.BankName, m.CardholderName, m.BillingZIP))
	return out, mapErr("save payment method", err)
}

// ListPaymentMethods lists a client's attached methods.
func (s *Store) ListPaymentMethods(ctx context.Context, clientID string) ([]*SavedPaymentMethod, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+pmCols+` FROM payment_methods WHERE client_id=$1 AND detached_at IS NULL ORDER BY created_at, id`, clientID)
	if err != nil {
		return nil, mapErr("list payment methods", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*SavedPaymentMethod, error) { return scanPM(r) })
	return out, mapErr("list payment methods", err)
}

// GetPaymentMethod reads a client's attached method.
func (s *Store) GetPaymentMethod(ctx context.Context, clientID, id string) (*SavedPaymentMethod, error) {
	m, err := scanPM(s.Pool.QueryRow(ctx, `SELECT `+pmCols+` FROM payment_methods WHERE client_id=$1 AND id=$2 AND detached_at IS NULL`, clientID, id))
	return m, mapErr("get payment method "+id, err)
}

// DetachPaymentMethod marks a method removed.
func (s *Store) DetachPaymentMethod(ctx context.Context, clientID, id string) error {
	tag, err := s.Pool.Exec(ctx, `UPDATE payment_methods SET detached_at=now() WHERE client_id=$1 AND id=$2 AND detached_at IS NULL`, clientID, id)
	if err == nil && tag.RowsAffected() == 0 {
		err = pgx.ErrNoRows
	}
	return mapErr("detach payment method "+id, err)
}

// MarkWebhookEvent records a processor event ID; false means it was seen before.
func (s *Store) MarkWebhookEvent(ctx context.Context, id, typ string) (bool, error) {
	tag, err := s.Pool.Exec(ctx, `INSERT INTO webhook_events (id, type) VALUES ($1,$2) ON CONFLICT (id) DO NOTHING`, id, typ)
	if err != nil {
		return false, mapErr("mark webhook event", err)
	}
	return tag.RowsAffected() == 1, nil
}

// WebhookEventSeen reports whether a processor event was processed already.
func (s *Store) WebhookEventSeen(ctx context.Context, id string) (bool, error) {
	var seen bool
	err := s.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM webhook_events WHERE id=$1)`, id).Scan(&seen)
	return seen, mapErr("webhook event seen", err)
}
