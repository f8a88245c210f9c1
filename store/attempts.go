package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/billflow/billflow/contract"
)

// ErrKeyReused says an idempotency key already names a different payment
// (or, from CreateInvoiceOnce, a different invoice).
var ErrKeyReused = errors.New("idempotency key reused for a different request")

// Attempt statuses: new (written, nothing sent), charging (the charge may
// have reached the processor: its outcome is asked, never charged again),
// then the processor's answer.
const (
	AttemptNew      = "new"
	AttemptCharging = "charging"
)

// Allocation is the part of a payment attempt applied to one invoice.
type Allocation = contract.Allocation

// PaymentAttempt is everything a payer asked for, written before the charge
// (migration 0004). Its ID is the processor's idempotency key.
type PaymentAttempt struct {
	ID                   string
	Kind                 string // "invoice" | "balance"
	PracticeID           string
	ClientID             string
	InvoiceID            string // "" for a balance payment
	Scope                string
	IdempotencyKey       string
	RequestHash          string
	Amount               int64
	Currency             string
	PaymentMethodID      string
	SavedPaymentMethodID string
	SaveCard             bool
	OffSession           bool
	CustomerID           string
	PayerName            string
	BillingZIP           string
	ReturnURL            string
	Description          string
	PayLinkID            string
	Allocations          []Allocation
	Status               string
	ProcessorIntentID    string
	NextActionURL        string
	MethodType           string
	Brand                string
	Last4                string
	BankName             string
	FailureCode          string
	DeclineCode          string
	FailureMessage       string
	Declined             bool
	CreatedAt            time.Time
	UpdatedAt            time.Time
}

// Settled reports whether the processor's answer is recorded.
func (a *PaymentAttempt) Settled() bool { return a.Status != AttemptNew && a.Status != AttemptCharging }

// target is what the idempotency key is unique for.
func (a *PaymentAttempt) target() string {
	if a.Kind == "balance" {
		return a.ClientID
	}
	return a.InvoiceID
}

const attemptCols = `id, kind, practice_id, client_id, COALESCE(invoice_id,''), scope, idempotency_key, request_hash, amount, currency,
 payment_method_id, saved_payment_method_id, save_card, off_session, customer_id, payer_name, billing_zip, return_url, description,
 COALESCE(pay_link_id,''), allocations, status, COALESCE(processor_intent_id,''), next_action_url, method_type, brand, last4,
 bank_name, failure_code, decline_code, failure_message, declined, created_at, updated_at`

func scanAttempt(row pgx.Row) (*PaymentAttempt, error) {
	var a PaymentAttempt
	var allocs []byte
	err := row.Scan(&a.ID, &a.Kind, &a.PracticeID, &a.ClientID, &a.InvoiceID, &a.Scope, &a.IdempotencyKey, &a.RequestHash,
		&a.Amount, &a.Currency, &a.PaymentMethodID, &a.SavedPaymentMethodID, &a.SaveCard, &a.OffSession, &a.CustomerID,
		&a.PayerName, &a.BillingZIP, &a.ReturnURL, &a.Description, &a.PayLinkID, &allocs, &a.Status, &a.ProcessorIntentID,
		&a.NextActionURL, &a.MethodType, &a.Brand, &a.Last4, &a.BankName, &a.FailureCode, &a.DeclineCode, &a.FailureMessage,
		&a.Declined, &a.CreatedAt, &a.UpdatedAt)
	if err != nil {
		return nil, err
	}
	if len(allocs) > 0 {
		if err := json.Unmarshal(allocs, &a.Allocations); err != nil {
			return nil, fmt.Errorf("attempt %s allocations: %w", a.ID, err)
		}
	}
	return &a, nil
}

// BeginPaymentAttempt writes a new attempt, or finds the one its idempotency
// key already made (created false). The same key with another request is
// ErrKeyReused. Anything Postgres refuses in what the payer typed fails
// here, before a cent is charged.
func (s *Store) BeginPaymentAttempt(ctx context.Context, a *PaymentAttempt) (*PaymentAttempt, bool, error) {
	var allocs any
	if len(a.Allocations) > 0 {
		b, err := json.Marshal(a.Allocations)
		if err != nil {
			return nil, false, err
		}
		allocs = b
	}
	const ins = `INSERT INTO payment_attempts (id, kind, practice_id, client_id, invoice_id, target, scope, idempotency_key,
 request_hash, amount, currency, payment_method_id, saved_payment_method_id, save_card, off_session, payer_name, billing_zip,
 return_url, description, pay_link_id, allocations, status)
 VALUES ($1,$2,$3,$4,NULLIF($5,''),$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,NULLIF($20,''),$21,'new')
 ON CONFLICT DO NOTHING RETURNING ` + attemptCols
	out, err := scanAttempt(s.Pool.QueryRow(ctx, ins, a.ID, a.Kind, a.PracticeID, a.ClientID, a.InvoiceID, a.target(), a.Scope,
		a.IdempotencyKey, a.RequestHash, a.Amount, a.Currency, a.PaymentMethodID, a.SavedPaymentMethodID, a.SaveCard, a.OffSession,
		a.PayerName, a.BillingZIP, a.ReturnURL, a.Description, a.PayLinkID, allocs))
	if err == nil {
		return out, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, false, mapErr("begin payment attempt "+a.ID, err)
	}
	out, err = scanAttempt(s.Pool.QueryRow(ctx, `SELECT `+attemptCols+` FROM payment_attempts
 WHERE target=$1 AND scope=$2 AND idempotency_key=$3`, a.target(), a.Scope, a.IdempotencyKey))
	if errors.Is(err, pgx.ErrNoRows) {
		// The ID, not the key, was taken: the same payment asked for under another key.
		out, err = s.GetPaymentAttempt(ctx, a.ID)
		if err != nil {
			return nil, false, err
		}
		if out.Scope != a.Scope || out.IdempotencyKey != a.IdempotencyKey {
			return nil, false, fmt.Errorf("payment attempt %s exists under another key: %w", a.ID, ErrKeyReused)
		}
	} else if err != nil {
		return nil, false, mapErr("find payment attempt", err)
	}
	if out.RequestHash != a.RequestHash {
		return nil, false, fmt.Errorf("payment attempt %s: %w", out.ID, ErrKeyReused)
	}
	return out, false, nil
}

// GetPaymentAttempt reads one attempt.
func (s *Store) GetPaymentAttempt(ctx context.Context, id string) (*PaymentAttempt, error) {
	a, err := scanAttempt(s.Pool.QueryRow(ctx, `SELECT `+attemptCols+` FROM payment_attempts WHERE id=$1`, id))
	return a, mapErr("get payment attempt "+id, err)
}

// MarkAttemptCharging says the charge is about to be sent: from now on its
// outcome is asked of the processor. A balance payment's allocations are
// fixed here, before the charge, so a retry records exactly them.
func (s *Store) MarkAttemptCharging(ctx context.Context, id, customerID string, allocs []Allocation) error {
	var b any
	if len(allocs) > 0 {
		raw, err := json.Marshal(allocs)
		if err != nil {
			return err
		}
		b = raw
	}
	tag, err := s.Pool.Exec(ctx, `UPDATE payment_attempts SET status='charging', customer_id=$2,
 allocations=COALESCE($3::jsonb, allocations), updated_at=now() WHERE id=$1 AND status IN ('new','charging')`, id, customerID, b)
	if err == nil && tag.RowsAffected() == 0 {
		err = fmt.Errorf("attempt %s is settled already: %w", id, ErrConflict)
	}
	return mapErr("mark attempt charging "+id, err)
}

// FailAttempt settles an attempt that charged nothing: refused before the
// charge (declined false) or declined by the processor.
func (s *Store) FailAttempt(ctx context.Context, id, code, message string, declined bool) error {
	_, err := s.Pool.Exec(ctx, `UPDATE payment_attempts SET status='failed', failure_code=$2, failure_message=$3, declined=$4,
 updated_at=now() WHERE id=$1 AND status IN ('new','charging')`, id, code, message, declined)
	return mapErr("fail attempt "+id, err)
}

// ChargeOutcome is the processor's answer to an attempt's charge.
type ChargeOutcome struct {
	Status         contract.PaymentStatus
	IntentID       string
	NextActionURL  string
	MethodType     string
	Brand          string
	Last4          string
	BankName       string
	CardholderName string
	FailureCode    string
	DeclineCode    string
	FailureMessage string
}

// RecordCharge records the processor's answer to an attempt in one
// transaction: the attempt, and unless it failed, every payment it makes
// (one per allocation; an invoice attempt is its own) with its ledger entry.
// Either all of a balance payment's invoices are recorded or none. It is
// idempotent, and a settled attempt keeps its final status. It returns the
// attempt as recorded and the invoices it touched, refreshed.
func (s *Store) RecordCharge(ctx context.Context, id string, o *ChargeOutcome) (*PaymentAttempt, []*Invoice, error) {
	var att *PaymentAttempt
	var invs []*Invoice
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		cur, err := scanAttempt(tx.QueryRow(ctx, `SELECT `+attemptCols+` FROM payment_attempts WHERE id=$1 FOR UPDATE`, id))
		if err != nil {
			return err
		}
		status := o.Status
		if s := contract.PaymentStatus(cur.Status); s.Final() {
			status = s
		}
		declined := status == contract.PaymentFailed && o.FailureCode != "" && o.FailureCode != "payment_intent_canceled"
		att, err = scanAttempt(tx.QueryRow(ctx, `UPDATE payment_attempts SET status=$2,
 processor_intent_id=COALESCE(processor_intent_id, NULLIF($3,'')), next_action_url=$4,
 method_type=COALESCE(NULLIF($5,''), method_type), brand=COALESCE(NULLIF($6,''), brand), last4=COALESCE(NULLIF($7,''), last4),
 bank_name=COALESCE(NULLIF($8,''), bank_name), failure_code=$9, decline_code=$10, failure_message=$11,
 declined = declined OR $12, updated_at=now() WHERE id=$1 RETURNING `+attemptCols, id, status, o.IntentID, o.NextActionURL,
			o.MethodType, o.Brand, o.Last4, o.BankName, o.FailureCode, o.DeclineCode, o.FailureMessage, declined))
		if err != nil {
			return err
		}
		allocs := att.Allocations
		if att.Kind == "invoice" {
			allocs = []Allocation{{InvoiceID: att.InvoiceID, PaymentID: att.ID, Amount: att.Amount}}
		}
		if status == contract.PaymentFailed && !slices.ContainsFunc(allocs, func(al Allocation) bool { return paymentExists(ctx, tx, al.PaymentID) }) {
			return nil // a decline records no payment
		}
		ids := make([]string, 0, len(allocs))
		for _, al := range allocs {
			ids = append(ids, al.InvoiceID)
		}
		slices.Sort(ids)
		// Invoices in ID order: two recorders never wait for each other in a circle.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM invoices WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids); err != nil {
			return err
		}
		payer := att.PayerName
		if payer == "" {
			payer = o.CardholderName
		}
		for _, al := range allocs {
			p := &Payment{ID: al.PaymentID, PracticeID: att.PracticeID, ClientID: att.ClientID, InvoiceID: al.InvoiceID,
				IdempotencyKey: al.PaymentID, Amount: al.Amount, Currency: att.Currency, Status: status,
				ProcessorIntentID: att.ProcessorIntentID, MethodType: att.MethodType, Brand: att.Brand, Last4: att.Last4,
				BankName: att.BankName, PayerName: payer, BillingZIP: att.BillingZIP, FailureCode: att.FailureCode,
				DeclineCode: att.DeclineCode, FailureMessage: att.FailureMessage}
			if att.Kind == "balance" {
				p.BalancePaymentID = att.ID
			}
			if _, err := recordPaymentTx(ctx, tx, p); err != nil {
				return err
			}
		}
		for _, al := range allocs {
			inv, err := refreshInvoice(ctx, tx, al.InvoiceID)
			if err != nil {
				return err
			}
			invs = append(invs, inv)
		}
		return nil
	})
	if err != nil {
		return nil, nil, mapErr("record charge "+id, err)
	}
	return att, invs, nil
}

func paymentExists(ctx context.Context, tx pgx.Tx, id string) bool {
	var ok bool
	_ = tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM payments WHERE id=$1)`, id).Scan(&ok)
	return ok
}

// UnsettledCharges sums what other attempts may have charged without an
// answer recorded yet: on one invoice (invoiceID set; a balance payment
// counts its part of it), or on all of the client's invoices. A new charge
// treats that money as paid until it is settled.
func (s *Store) UnsettledCharges(ctx context.Context, clientID, invoiceID, exceptID string) (int64, error) {
	var sum int64
	err := s.Pool.QueryRow(ctx, `SELECT COALESCE(SUM(CASE
   WHEN $2 = '' THEN a.amount
   WHEN a.kind = 'invoice' THEN a.amount
   ELSE (SELECT COALESCE(SUM((e->>'Amount')::bigint),0) FROM jsonb_array_elements(a.allocations) e WHERE e->>'InvoiceID' = $2)
 END),0)
 FROM payment_attempts a WHERE a.client_id=$1 AND a.status='charging' AND a.id <> $3
   AND ($2 = '' OR a.invoice_id = $2 OR a.kind = 'balance')`, clientID, invoiceID, exceptID).Scan(&sum)
	return sum, mapErr("unsettled charges", err)
}

// UnsettledAttempts lists attempts the reconciler should ask the processor
// about: charges with no recorded answer last touched before chargingBefore,
// and payments still processing or awaiting 3-D Secure last touched before
// pendingBefore. scope is one practice's ID, or "" for the practices without
// a namespace of their own.
func (s *Store) UnsettledAttempts(ctx context.Context, scope string, chargingBefore, pendingBefore time.Time, limit int) ([]*PaymentAttempt, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+attemptCols+` FROM payment_attempts
 WHERE ((status='charging' AND updated_at < $1) OR (status IN ('processing','requires_action') AND updated_at < $2))
 AND `+scopeClause("payment_attempts.practice_id", 4)+`
 ORDER BY updated_at LIMIT $3`, chargingBefore, pendingBefore, limit, scope)
	if err != nil {
		return nil, mapErr("unsettled attempts", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*PaymentAttempt, error) { return scanAttempt(r) })
	return out, mapErr("unsettled attempts", err)
}

// TouchAttempt moves an attempt to the back of the reconciler's list.
func (s *Store) TouchAttempt(ctx context.Context, id string) error {
	_, err := s.Pool.Exec(ctx, `UPDATE payment_attempts SET updated_at=now() WHERE id=$1`, id)
	return mapErr("touch attempt "+id, err)
}

// Declines counts processor declines since a time: the client's, and (when
// payLinkID is set) those through one pay link.
func (s *Store) Declines(ctx context.Context, clientID, payLinkID string, since time.Time) (byClient, byLink int, err error) {
	err = s.Pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE $2 <> '' AND pay_link_id = $2)
 FROM payment_attempts WHERE client_id=$1 AND declined AND created_at >= $3`, clientID, payLinkID, since).Scan(&byClient, &byLink)
	return byClient, byLink, mapErr("count declines", err)
}

// DeclinedAttempts lists an invoice's declined payment attempts, newest
// first, for the practitioner.
func (s *Store) DeclinedAttempts(ctx context.Context, invoiceID string, limit int) ([]*PaymentAttempt, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+attemptCols+` FROM payment_attempts WHERE invoice_id=$1 AND declined
 ORDER BY created_at DESC, id LIMIT $2`, invoiceID, limit)
	if err != nil {
		return nil, mapErr("declined attempts", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*PaymentAttempt, error) { return scanAttempt(r) })
	return out, mapErr("declined attempts", err)
}

// AttemptByIntent finds the attempt a processor PaymentIntent belongs to.
func (s *Store) AttemptByIntent(ctx context.Context, intentID string) (*PaymentAttempt, error) {
	a, err := scanAttempt(s.Pool.QueryRow(ctx, `SELECT `+attemptCols+` FROM payment_attempts WHERE processor_intent_id=$1
 ORDER BY created_at DESC LIMIT 1`, intentID))
	return a, mapErr("attempt by intent", err)
}
