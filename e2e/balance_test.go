package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Pay Now next to the balance: one charge, applied oldest invoice first, one receipt.
func TestBalancePaymentAcrossThreeInvoices(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	var ids, numbers []string
	for _, amt := range []int64{10000, 12000, 8000} {
		inv := s.newInvoice(t, s.Key, cl, amt, map[string]any{"partial_payments": map[string]any{"enabled": true}})
		ids = append(ids, inv.str("id"))
		numbers = append(numbers, inv.str("number"))
	}
	// The first invoice is already partly paid.
	r := s.do(t, "POST", "/v1/invoices/"+ids[0]+"/payments", s.Key, map[string]any{"amount": 4000, "payment_method": "pm_card_visa"})
	require.Equal(t, 200, r.Status, string(r.Raw))

	wrong := s.do(t, "POST", "/v1/clients/"+cl+"/balance-payments", s.Key, map[string]any{"amount": 100, "payment_method": "pm_card_visa"})
	assert.Equal(t, 400, wrong.Status)
	assert.Equal(t, "amount_mismatch", wrong.errCode())

	before := s.Sandbox.CountPaymentIntents()
	bp := s.do(t, "POST", "/v1/clients/"+cl+"/balance-payments", s.Key, map[string]any{"amount": 26000, "payment_method": "pm_card_mastercard"},
		"Idempotency-Key", "balance-"+cl)
	require.Equal(t, 200, bp.Status, string(bp.Raw))
	assert.Equal(t, "succeeded", bp.str("status"))
	assert.Equal(t, before+1, s.Sandbox.CountPaymentIntents(), "one charge for the whole balance")
	allocs := bp.Body["allocations"].([]any)
	require.Len(t, allocs, 3)
	assert.Equal(t, ids[0], allocs[0].(map[string]any)["invoice_id"])
	assert.Equal(t, float64(6000), allocs[0].(map[string]any)["amount"])

	// Retried with the same key: the same answer, no second charge.
	again := s.do(t, "POST", "/v1/clients/"+cl+"/balance-payments", s.Key, map[string]any{"amount": 26000, "payment_method": "pm_card_mastercard"},
		"Idempotency-Key", "balance-"+cl)
	require.Equal(t, 200, again.Status, string(again.Raw))
	assert.Equal(t, bp.str("id"), again.str("id"))
	assert.Equal(t, before+1, s.Sandbox.CountPaymentIntents())

	for _, id := range ids {
		got := s.waitStatus(t, id, "paid")
		assert.Equal(t, int64(0), got.num("amount_due"))
	}
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		n := 0
		for _, m := range s.Mail.Messages() {
			if kindOf(m) == "balance_payment_receipt" && m.To[0] == "ada@example.com" {
				ok := true
				for _, num := range numbers {
					ok = ok && assert.Contains(c, m.Text, num)
				}
				if ok {
					n++
				}
			}
		}
		assert.Equal(c, 1, n, "one receipt listing the invoices")
	}, 30*time.Second, 200*time.Millisecond)

	none := s.do(t, "POST", "/v1/clients/"+cl+"/balance-payments", s.Key, map[string]any{"payment_method": "pm_card_visa"})
	assert.Equal(t, 400, none.Status)
	assert.Equal(t, "no_balance", none.errCode())
}

// A balance payment that needs 3-D Secure hands the client to the challenge
// and, once done, back to its Billing & Payments page; the webhook settles it.
func TestBalancePaymentThreeDSecureReturnsToPortal(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	ids := []string{s.newInvoice(t, s.Key, cl, 7000, nil).str("id"), s.newInvoice(t, s.Key, cl, 5000, nil).str("id")}
	bp := s.do(t, "POST", "/v1/clients/"+cl+"/balance-payments", s.Key, map[string]any{"amount": 12000, "payment_method": "pm_card_authenticationRequired"})
	require.Equal(t, 200, bp.Status, string(bp.Raw))
	assert.Equal(t, "requires_action", bp.str("status"))
	next := bp.Body["next_action"].(map[string]any)["redirect_to_url"].(map[string]any)["url"].(string)
	assert.Contains(t, next, "/sandbox/3ds/")
	var intentID string
	for _, pi := range s.Sandbox.PaymentIntents() {
		if pi.Metadata["balance_payment_id"] == bp.str("id") {
			intentID = pi.ID
			assert.Equal(t, s.Config.PublicBaseURL+"/portal#balance", pi.ReturnURL, "3-D Secure returns to the portal")
		}
	}
	require.NotEmpty(t, intentID)
	for _, id := range ids {
		assert.NotEqual(t, "paid", s.do(t, "GET", "/v1/invoices/"+id, s.Key, nil).str("status"))
	}
	require.NoError(t, s.Sandbox.CompleteAction(intentID, true))
	for _, id := range ids {
		s.waitStatus(t, id, "paid")
	}
}

// An invoice payment racing a balance payment of the same client: the
// client's payment lease lets one of them charge and the other finds the
// amount gone, so nothing is paid twice.
func TestBalancePaymentRacingInvoicePaymentPaysOnce(t *testing.T) {
	s := getStack(t)
	ctx := context.Background()
	cl := s.newClient(t, s.Key)
	a := s.newInvoice(t, s.Key, cl, 10000, nil).str("id")
	b := s.newInvoice(t, s.Key, cl, 5000, nil).str("id")

	// Hold the lease so both charges queue behind it and then race.
	ok, err := s.Store.LockClientPayments(ctx, cl, "test-holder", true, time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	before := s.Sandbox.CountPaymentIntents()
	var wg sync.WaitGroup
	var bal, inv *resp
	wg.Add(2)
	go func() {
		defer wg.Done()
		bal = s.do(t, "POST", "/v1/clients/"+cl+"/balance-payments", s.Key, map[string]any{"amount": 15000, "payment_method": "pm_card_visa"})
	}()
	go func() {
		defer wg.Done()
		inv = s.do(t, "POST", "/v1/invoices/"+a+"/payments", s.Key, map[string]any{"amount": 10000, "payment_method": "pm_card_mastercard"})
	}()
	time.Sleep(500 * time.Millisecond)
	assert.Equal(t, before, s.Sandbox.CountPaymentIntents(), "no charge while another charge of the client holds the lease")
	require.NoError(t, s.Store.UnlockClientPayments(ctx, cl, "test-holder"))
	wg.Wait()

	// Exactly one of them charged.
	require.True(t, (bal.Status == 200) != (inv.Status == 200), "balance %d %s; invoice %d %s", bal.Status, bal.Raw, inv.Status, inv.Raw)
	assert.Equal(t, before+1, s.Sandbox.CountPaymentIntents())
	if bal.Status == 200 {
		assert.Equal(t, 409, inv.Status)
		assert.Equal(t, "invoice_not_payable", inv.errCode())
		assert.Contains(t, string(inv.Raw), "paid in the meantime")
		s.waitStatus(t, a, "paid")
		s.waitStatus(t, b, "paid")
	} else {
		assert.Equal(t, 409, bal.Status)
		assert.Equal(t, "balance_changed", bal.errCode())
		s.waitStatus(t, a, "paid")
		assert.Equal(t, int64(5000), s.do(t, "GET", "/v1/invoices/"+b, s.Key, nil).num("amount_due"))
	}
	ps, err := s.Store.ListPayments(ctx, a)
	require.NoError(t, err)
	var paid int64
	for _, p := range ps {
		paid += p.Amount
	}
	assert.Equal(t, int64(10000), paid, "invoice A paid exactly once")
}

// A balance payment left waiting for 3-D Secure is canceled when the client
// pays one of its invoices directly: finishing it later would pay that
// invoice twice. Its other invoices stay due.
func TestInvoicePaymentReplacesUnfinishedBalancePayment(t *testing.T) {
	s := getStack(t)
	ctx := context.Background()
	cl := s.newClient(t, s.Key)
	a := s.newInvoice(t, s.Key, cl, 7000, nil).str("id")
	b := s.newInvoice(t, s.Key, cl, 5000, nil).str("id")
	bp := s.do(t, "POST", "/v1/clients/"+cl+"/balance-payments", s.Key, map[string]any{"amount": 12000, "payment_method": "pm_card_authenticationRequired"})
	require.Equal(t, 200, bp.Status, string(bp.Raw))
	require.Equal(t, "requires_action", bp.str("status"))

	r := s.do(t, "POST", "/v1/invoices/"+a+"/payments", s.Key, map[string]any{"amount": 7000, "payment_method": "pm_card_visa"})
	require.Equal(t, 200, r.Status, string(r.Raw))
	s.waitStatus(t, a, "paid")
	var intentID string
	for _, pi := range s.Sandbox.PaymentIntents() {
		if pi.Metadata["balance_payment_id"] == bp.str("id") {
			intentID = pi.ID
			assert.Equal(t, "canceled", pi.Status)
		}
	}
	require.NotEmpty(t, intentID)
	assert.Error(t, s.Sandbox.CompleteAction(intentID, true))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		ps, err := s.Store.PaymentsOfBalance(ctx, bp.str("id"))
		if assert.NoError(c, err) && assert.Len(c, ps, 2) {
			for _, p := range ps {
				assert.Equal(c, "failed", string(p.Status))
			}
		}
	}, 20*time.Second, 100*time.Millisecond)
	assert.Equal(t, int64(5000), s.do(t, "GET", "/v1/invoices/"+b, s.Key, nil).num("amount_due"))
	assert.Equal(t, float64(7000), s.do(t, "GET", "/v1/invoices/"+a, s.Key, nil).Body["amount_paid"])
}
