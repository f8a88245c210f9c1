package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// flow is what one payer does with one invoice.
type flow int

const (
	flowFull         flow = iota // pay it all with a Visa
	flowHalves                   // half, then the rest with another card
	flowDeclineFirst             // a declined card, then a Visa
	flowNULName                  // a payer name with a NUL byte (refused), then a Visa
	flowLongName                 // a payer name of 100 KB (refused), then a Visa
	flowVoid3DS                  // 3-D Secure started, the invoice voided, the challenge finished after
	flowSharedRefund             // two invoices paid by one balance payment, both refunded twice at once
)

var flowNames = map[flow]string{flowFull: "full", flowHalves: "halves", flowDeclineFirst: "decline-then-pay",
	flowNULName: "nul-name", flowLongName: "oversized-name", flowVoid3DS: "void-during-3ds", flowSharedRefund: "shared-intent-refunds"}

// flowOf spreads the flows over the invoices: most pay plainly, every
// twentieth of each attack.
func flowOf(i int) flow {
	switch i % 20 {
	case 10, 11, 12, 13:
		return flowHalves
	case 14, 15:
		return flowDeclineFirst
	case 16:
		return flowNULName
	case 17:
		return flowLongName
	case 18:
		return flowVoid3DS
	case 19:
		return flowSharedRefund
	}
	return flowFull
}

// outcome is what a flow saw and expects of the books.
type outcome struct {
	flow       flow
	invoices   []string // the invoices it made
	wantStatus string   // every invoice's final status
	err        error    // the flow could not finish as a payer would expect
	pays       []time.Duration
	slow       []string // payments slower than slowPayment
	retries    int
	intent3DS  string
}

type apiResp struct {
	status int
	body   map[string]any
	raw    []byte
}

func (r *apiResp) code() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (r *apiResp) str(keys ...string) string {
	var v any = r.body
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	s, _ := v.(string)
	return s
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// call sends one request to one of the API replicas.
func (w *world) call(ctx context.Context, replica int, method, path, idem string, body any) (*apiResp, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, w.apiURLs[replica%len(w.apiURLs)]+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+w.key)
	req.Header.Set("Content-Type", "application/json")
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	res, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	out := &apiResp{status: res.StatusCode, raw: raw}
	_ = json.Unmarshal(raw, &out.body)
	return out, nil
}

// slowPayment is a payment worth naming in the report.
const slowPayment = 20 * time.Second

// retryDeadline bounds how long a payer keeps retrying one request.
const retryDeadline = 4 * time.Minute

// send retries a request as a careful client does: the same Idempotency-Key
// after a network error, a 5xx, a 429 or a 409 "in use", alternating API
// replicas, until an answer that is the request's own. A 409 that says an
// earlier payment is still being confirmed is asked again under a new key
// (a kept 4xx would otherwise be replayed).
func (w *world) send(ctx context.Context, o *outcome, method, path, idem string, body any) (*apiResp, error) {
	deadline := time.Now().Add(retryDeadline)
	key := idem
	first := int(w.rr.Add(1)) // requests take turns on the API replicas
	for try := 0; ; try++ {
		r, err := w.call(ctx, first+try, method, path, key, body)
		switch {
		case err != nil:
		case r.status >= 500, r.status == http.StatusTooManyRequests, r.code() == "idempotency_key_in_use":
		case r.status == http.StatusConflict && strings.Contains(string(r.raw), "still being confirmed"):
			key = fmt.Sprintf("%s-again-%d", idem, try)
		default:
			return r, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("%d %s", r.status, r.raw)
			}
			return nil, fmt.Errorf("%s %s: no answer in %s: %w", method, path, retryDeadline, err)
		}
		o.retries++
		time.Sleep(300 * time.Millisecond)
	}
}

func (w *world) newClient(ctx context.Context, o *outcome, n int) (string, error) {
	r, err := w.send(ctx, o, "POST", "/v1/clients", fmt.Sprintf("client-%d", n),
		map[string]any{"name": fmt.Sprintf("Client %d", n), "email": fmt.Sprintf("client%d@example.com", n)})
	if err != nil {
		return "", err
	}
	if r.status != http.StatusCreated {
		return "", fmt.Errorf("create client: %d %s", r.status, r.raw)
	}
	return r.str("id"), nil
}

func (w *world) newInvoice(ctx context.Context, o *outcome, clientID, idem string, amount int64, partial bool) (string, error) {
	today := time.Now().UTC()
	body := map[string]any{"client_id": clientID, "due_date": today.AddDate(0, 0, 14).Format(time.DateOnly),
		"items": []map[string]any{{"service_date": today.Format(time.DateOnly), "description": "Individual therapy, 53 min",
			"unit_amount": amount, "cpt_code": "90837"}}}
	if partial {
		body["partial_payments"] = map[string]any{"enabled": true}
	}
	r, err := w.send(ctx, o, "POST", "/v1/invoices", idem, body)
	if err != nil {
		return "", err
	}
	if r.status != http.StatusCreated {
		return "", fmt.Errorf("create invoice: %d %s", r.status, r.raw)
	}
	id := r.str("id")
	o.invoices = append(o.invoices, id)
	return id, nil
}

// pay sends one payment and checks its answer is the expected status code.
func (w *world) pay(ctx context.Context, o *outcome, invoiceID, idem string, body map[string]any, want int) (*apiResp, error) {
	t0 := time.Now()
	r, err := w.send(ctx, o, "POST", "/v1/invoices/"+invoiceID+"/payments", idem, body)
	if err != nil {
		return nil, err
	}
	if r.status != want {
		return r, fmt.Errorf("payment %s on %s: got %d %s, want %d", idem, invoiceID, r.status, truncate(r.raw), want)
	}
	if want == http.StatusOK {
		d := time.Since(t0)
		o.pays = append(o.pays, d)
		if d > slowPayment {
			o.slow = append(o.slow, fmt.Sprintf("%s on %s took %s", idem, invoiceID, d.Round(time.Second)))
		}
	}
	return r, nil
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// runFlow plays flow f for invoice number n.
func (w *world) runFlow(ctx context.Context, n int) *outcome {
	f := flowOf(n)
	o := &outcome{flow: f, wantStatus: "paid"}
	o.err = w.playFlow(ctx, n, o)
	return o
}

func (w *world) playFlow(ctx context.Context, n int, o *outcome) error {
	amount := int64(5000 + (n%37)*250)
	cl, err := w.newClient(ctx, o, n)
	if err != nil {
		return err
	}
	key := func(s string) string { return fmt.Sprintf("inv%d-%s", n, s) }
	visa := map[string]any{"amount": amount, "payment_method": "pm_card_visa", "payer_name": "Ada Lovelace"}
	switch o.flow {
	case flowSharedRefund:
		return w.sharedRefund(ctx, o, n, cl, amount)
	case flowHalves:
		id, err := w.newInvoice(ctx, o, cl, key("create"), amount, true)
		if err != nil {
			return err
		}
		half := amount / 2
		if _, err := w.pay(ctx, o, id, key("first-half"), map[string]any{"amount": half, "payment_method": "pm_card_visa"}, 200); err != nil {
			return err
		}
		_, err = w.pay(ctx, o, id, key("rest"), map[string]any{"amount": amount - half, "payment_method": "pm_card_mastercard"}, 200)
		return err
	}
	id, err := w.newInvoice(ctx, o, cl, key("create"), amount, false)
	if err != nil {
		return err
	}
	switch o.flow {
	case flowDeclineFirst:
		r, err := w.pay(ctx, o, id, key("declined"), map[string]any{"amount": amount, "payment_method": "pm_card_chargeDeclined"}, 402)
		if err != nil {
			return err
		}
		if r.code() != "card_declined" {
			return fmt.Errorf("decline code %q, want card_declined", r.code())
		}
	case flowNULName:
		if _, err := w.pay(ctx, o, id, key("nul"), map[string]any{"amount": amount, "payment_method": "pm_card_visa",
			"payer_name": "Ada\x00Lovelace"}, 400); err != nil {
			return err
		}
	case flowLongName:
		if _, err := w.pay(ctx, o, id, key("long"), map[string]any{"amount": amount, "payment_method": "pm_card_visa",
			"payer_name": strings.Repeat("Ada Lovelace ", 8000)}, 400); err != nil {
			return err
		}
	case flowVoid3DS:
		return w.void3DS(ctx, o, id, amount, key)
	}
	_, err = w.pay(ctx, o, id, key("pay"), visa, 200)
	return err
}

// void3DS: the payer starts 3-D Secure, the practitioner voids the invoice,
// then the payer finishes the challenge. Nothing may be captured.
func (w *world) void3DS(ctx context.Context, o *outcome, id string, amount int64, key func(string) string) error {
	o.wantStatus = "void"
	r, err := w.pay(ctx, o, id, key("3ds"), map[string]any{"amount": amount, "payment_method": "pm_card_authenticationRequired"}, 200)
	if err != nil {
		return err
	}
	if s := r.str("payment", "status"); s != "requires_action" {
		return fmt.Errorf("3-D Secure payment status %q, want requires_action", s)
	}
	payID := r.str("payment", "id")
	v, err := w.send(ctx, o, "POST", "/v1/invoices/"+id+"/void", key("void"), nil)
	if err != nil {
		return err
	}
	if v.status != http.StatusOK || v.str("status") != "void" {
		return fmt.Errorf("void during 3-D Secure: %d %s", v.status, truncate(v.raw))
	}
	for _, pi := range w.sandbox.PaymentIntents() {
		if pi.Metadata["payment_id"] == payID {
			o.intent3DS = pi.ID
			if err := w.sandbox.CompleteAction(pi.ID, true); err == nil {
				return fmt.Errorf("3-D Secure of %s finished after the void", pi.ID)
			}
		}
	}
	if o.intent3DS == "" {
		return fmt.Errorf("no PaymentIntent for 3-D Secure payment %s", payID)
	}
	return nil
}

// sharedRefund: one balance payment pays two invoices (one PaymentIntent),
// then each invoice's payment is refunded in full by two requests at once,
// on both replicas. Stripe must refund exactly what the ledger records.
func (w *world) sharedRefund(ctx context.Context, o *outcome, n int, cl string, amount int64) error {
	o.wantStatus = "refunded"
	for i := range 2 {
		if _, err := w.newInvoice(ctx, o, cl, fmt.Sprintf("inv%d-create-%d", n, i), amount+int64(i)*100, false); err != nil {
			return err
		}
	}
	r, err := w.send(ctx, o, "POST", "/v1/clients/"+cl+"/balance-payments", fmt.Sprintf("inv%d-balance", n),
		map[string]any{"payment_method": "pm_card_visa"})
	if err != nil {
		return err
	}
	if r.status != http.StatusOK || r.str("status") != "succeeded" {
		return fmt.Errorf("balance payment: %d %s", r.status, truncate(r.raw))
	}
	allocs, _ := r.body["allocations"].([]any)
	if len(allocs) != 2 {
		return fmt.Errorf("balance payment allocated to %d invoices, want 2", len(allocs))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var refunded atomic.Int64
	var errs []string
	for _, a := range allocs {
		al := a.(map[string]any)
		inv, pay := al["invoice_id"].(string), al["payment_id"].(string)
		amt := int64(al["amount"].(float64))
		for j := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var oo outcome
				rr, err := w.send(ctx, &oo, "POST", "/v1/invoices/"+inv+"/refunds", fmt.Sprintf("refund-%s-%d", pay, j),
					map[string]any{"amount": amt, "payment_id": pay})
				mu.Lock()
				defer mu.Unlock()
				o.retries += oo.retries
				switch {
				case err != nil:
					errs = append(errs, err.Error())
				case rr.status == http.StatusOK:
					refunded.Add(1)
				case rr.status != http.StatusBadRequest && rr.status != http.StatusConflict:
					errs = append(errs, fmt.Sprintf("refund %s: %d %s", pay, rr.status, truncate(rr.raw)))
				}
			}()
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("refunds: %s", strings.Join(errs, "; "))
	}
	if got := refunded.Load(); got != 2 {
		return fmt.Errorf("%d of 4 concurrent full refunds of 2 payments succeeded, want 2 (one per payment)", got)
	}
	return nil
}

// payers runs every flow on a pool of concurrent payers; pgAt is closed a
// third of the way through, temporalAt two thirds.
func (w *world) payers(ctx context.Context, pgAt, temporalAt chan<- struct{}) []*outcome {
	out := make([]*outcome, w.o.Invoices)
	next := make(chan int)
	var wg sync.WaitGroup
	var done atomic.Int64
	var once, onceT sync.Once
	for range w.o.Payers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range next {
				out[n] = w.runFlow(ctx, n)
				d := done.Add(1)
				if d >= int64(w.o.Invoices/3) {
					once.Do(func() { close(pgAt) })
				}
				if d >= int64(2*w.o.Invoices/3) {
					onceT.Do(func() { close(temporalAt) })
				}
				if d := done.Load(); d%20 == 0 {
					w.logf("%d/%d flows done", d, w.o.Invoices)
				}
			}
		}()
	}
	// Spread the flows over the fault window, so faults meet payments
	// throughout instead of after a burst that is over in seconds.
	var every time.Duration
	if w.o.ChaosFor > 0 {
		every = w.o.ChaosFor / time.Duration(w.o.Invoices)
	}
	for n := range w.o.Invoices {
		if n > 0 && every > 0 {
			time.Sleep(every)
		}
		next <- n
	}
	close(next)
	wg.Wait()
	once.Do(func() { close(pgAt) })
	onceT.Do(func() { close(temporalAt) })
	return out
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}
