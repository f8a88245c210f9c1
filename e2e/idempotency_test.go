package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/store"
)

// idemPractice makes a practice of the test's own, so its keys and counts are
// its own: it returns the practice ID and API key.
func (s *stack) idemPractice(t *testing.T, name string) (string, string) {
	p, key, err := s.Store.CreatePractice(context.Background(), store.NewPractice{Name: name, Currency: "usd", Timezone: "UTC"})
	require.NoError(t, err)
	return p.ID, key
}

func (s *stack) count(t *testing.T, query string, args ...any) int {
	var n int
	require.NoError(t, s.Store.Pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

// requireReplay checks that again is first, byte for byte, marked as replayed.
func requireReplay(t *testing.T, first, again *resp) {
	t.Helper()
	require.Equal(t, first.Status, again.Status, string(again.Raw))
	assert.Equal(t, string(first.Raw), string(again.Raw))
	assert.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
	assert.Empty(t, first.Header.Get("Idempotent-Replayed"))
}

func requireReused(t *testing.T, r *resp) {
	t.Helper()
	require.Equal(t, http.StatusConflict, r.Status, string(r.Raw))
	e := r.Body["error"].(map[string]any)
	assert.Equal(t, "idempotency_error", e["type"])
	assert.Equal(t, "idempotency_key_reused", e["code"])
	assert.Equal(t, "Idempotency-Key", e["param"])
	assert.NotEmpty(t, e["message"])
}

func TestIdempotencyCreateClient(t *testing.T) {
	s := getStack(t)
	pid, key := s.idemPractice(t, "Idempotent Clients")
	clients := func() int { return s.count(t, `SELECT count(*) FROM clients WHERE practice_id = $1`, pid) }
	body := map[string]any{"name": "Ada Lovelace", "email": "ada@example.com"}

	first := s.do(t, "POST", "/v1/clients", key, body, "Idempotency-Key", "client-1")
	require.Equal(t, 201, first.Status, string(first.Raw))
	requireReplay(t, first, s.do(t, "POST", "/v1/clients", key, body, "Idempotency-Key", "client-1"))
	assert.Equal(t, 1, clients())

	requireReused(t, s.do(t, "POST", "/v1/clients", key, map[string]any{"name": "Grace Hopper", "email": "grace@example.com"},
		"Idempotency-Key", "client-1"))
	assert.Equal(t, 1, clients(), "a refused request creates nothing")

	// Without the header every request is a new client.
	a, b := s.do(t, "POST", "/v1/clients", key, body), s.do(t, "POST", "/v1/clients", key, body)
	require.Equal(t, 201, a.Status)
	require.Equal(t, 201, b.Status)
	assert.NotEqual(t, a.str("id"), b.str("id"))
	assert.Equal(t, 3, clients())

	// A validation error is an answer too: replayed as is, and the key is spent.
	bad := s.do(t, "POST", "/v1/clients", key, map[string]any{"name": "Ada", "email": "not an email"}, "Idempotency-Key", "client-bad")
	require.Equal(t, 400, bad.Status, string(bad.Raw))
	assert.Equal(t, "email", bad.Body["error"].(map[string]any)["param"])
	requireReplay(t, bad, s.do(t, "POST", "/v1/clients", key, map[string]any{"name": "Ada", "email": "not an email"},
		"Idempotency-Key", "client-bad"))
	requireReused(t, s.do(t, "POST", "/v1/clients", key, body, "Idempotency-Key", "client-bad"))
	assert.Equal(t, 3, clients())

	long := s.do(t, "POST", "/v1/clients", key, body, "Idempotency-Key", string(bytes.Repeat([]byte("k"), 256)))
	assert.Equal(t, 400, long.Status)
	assert.Equal(t, "Idempotency-Key", long.Body["error"].(map[string]any)["param"])
	assert.Equal(t, 3, clients())
}

func TestIdempotencyCreateInvoice(t *testing.T) {
	s := getStack(t)
	pid, key := s.idemPractice(t, "Idempotent Invoices")
	cl := s.newClient(t, key)
	invoices := func() int { return s.count(t, `SELECT count(*) FROM invoices WHERE practice_id = $1`, pid) }
	body := func(amount int64) map[string]any {
		return map[string]any{"client_id": cl, "due_date": time.Now().AddDate(0, 0, 14).Format(time.DateOnly),
			"items": []map[string]any{{"service_date": time.Now().Format(time.DateOnly), "description": "Session", "unit_amount": amount}}}
	}
	first := s.do(t, "POST", "/v1/invoices", key, body(9000), "Idempotency-Key", "invoice-1")
	require.Equal(t, 201, first.Status, string(first.Raw))
	requireReplay(t, first, s.do(t, "POST", "/v1/invoices", key, body(9000), "Idempotency-Key", "invoice-1"))
	requireReused(t, s.do(t, "POST", "/v1/invoices", key, body(9100), "Idempotency-Key", "invoice-1"))
	assert.Equal(t, 1, invoices())
	// Nor may the key be used on another route.
	requireReused(t, s.do(t, "POST", "/v1/invoices/"+first.str("id")+"/void", key, nil, "Idempotency-Key", "invoice-1"))
	assert.Equal(t, "open", s.do(t, "GET", "/v1/invoices/"+first.str("id"), key, nil).str("status"))
}

func TestIdempotencyPaymentAndRefund(t *testing.T) {
	s := getStack(t)
	_, key := s.idemPractice(t, "Idempotent Payments")
	id := s.newInvoice(t, key, s.newClient(t, key), 9000, nil).str("id")
	pay := map[string]any{"amount": 9000, "payment_method": "pm_card_visa"}

	first := s.do(t, "POST", "/v1/invoices/"+id+"/payments", key, pay, "Idempotency-Key", "pay-1")
	require.Equal(t, 200, first.Status, string(first.Raw))
	requireReplay(t, first, s.do(t, "POST", "/v1/invoices/"+id+"/payments", key, pay, "Idempotency-Key", "pay-1"))
	requireReused(t, s.do(t, "POST", "/v1/invoices/"+id+"/payments", key, map[string]any{"amount": 9000, "payment_method": "pm_card_mastercard"},
		"Idempotency-Key", "pay-1"))
	assert.Len(t, s.intentsFor(id), 1, "one charge")

	refund := map[string]any{"amount": 3000, "reason": "requested_by_customer"}
	r := s.do(t, "POST", "/v1/invoices/"+id+"/refunds", key, refund, "Idempotency-Key", "refund-1")
	require.Equal(t, 200, r.Status, string(r.Raw))
	requireReplay(t, r, s.do(t, "POST", "/v1/invoices/"+id+"/refunds", key, refund, "Idempotency-Key", "refund-1"))
	requireReused(t, s.do(t, "POST", "/v1/invoices/"+id+"/refunds", key, map[string]any{"amount": 2000}, "Idempotency-Key", "refund-1"))
	got := s.do(t, "GET", "/v1/invoices/"+id, key, nil)
	assert.Len(t, got.Body["refunds"], 1, "one refund")
	assert.Equal(t, int64(3000), got.num("amount_refunded"))
	assert.Len(t, s.intentsFor(id), 1)
}

func TestIdempotencyKeysBelongToTheCaller(t *testing.T) {
	s := getStack(t)
	// Two practices with the same key and body: two clients.
	_, keyA := s.idemPractice(t, "Idempotent A")
	_, keyB := s.idemPractice(t, "Idempotent B")
	body := map[string]any{"name": "Ada Lovelace", "email": "ada@example.com"}
	a := s.do(t, "POST", "/v1/clients", keyA, body, "Idempotency-Key", "same-key")
	b := s.do(t, "POST", "/v1/clients", keyB, body, "Idempotency-Key", "same-key")
	require.Equal(t, 201, a.Status, string(a.Raw))
	require.Equal(t, 201, b.Status, string(b.Raw))
	assert.NotEqual(t, a.str("id"), b.str("id"))
	assert.Empty(t, b.Header.Get("Idempotent-Replayed"))

	// A client on its portal token and its practice with the same key.
	cl := a.str("id")
	inv1 := s.newInvoice(t, keyA, cl, 5000, nil).str("id")
	inv2 := s.newInvoice(t, keyA, cl, 6000, nil).str("id")
	tok := s.portalToken(t, keyA, cl)
	byPractice := s.do(t, "POST", "/v1/invoices/"+inv1+"/payments", keyA, map[string]any{"amount": 5000, "payment_method": "pm_card_visa"},
		"Idempotency-Key", "portal-and-practice")
	byClient := s.do(t, "POST", "/v1/invoices/"+inv2+"/payments", tok, map[string]any{"amount": 6000, "payment_method": "pm_card_visa"},
		"Idempotency-Key", "portal-and-practice")
	require.Equal(t, 200, byPractice.Status, string(byPractice.Raw))
	require.Equal(t, 200, byClient.Status, string(byClient.Raw))
	assert.Empty(t, byClient.Header.Get("Idempotent-Replayed"))
	assert.Len(t, s.intentsFor(inv1), 1)
	assert.Len(t, s.intentsFor(inv2), 1)
	// Each replays its own answer.
	requireReplay(t, byClient, s.do(t, "POST", "/v1/invoices/"+inv2+"/payments", tok, map[string]any{"amount": 6000, "payment_method": "pm_card_visa"},
		"Idempotency-Key", "portal-and-practice"))
}

// try is s.do for other goroutines: it returns errors instead of failing the test.
func (s *stack) try(method, path, key string, body any, hdr ...string) (*resp, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(method, s.API.URL+path, bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	out := &resp{Status: res.StatusCode, Header: res.Header}
	if out.Raw, err = io.ReadAll(res.Body); err != nil {
		return nil, err
	}
	_ = json.Unmarshal(out.Raw, &out.Body)
	return out, nil
}

// concurrently sends n copies of one request at once.
func (s *stack) concurrently(t *testing.T, n int, path, key string, body any, hdr ...string) []*resp {
	out := make([]*resp, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			out[i], errs[i] = s.try("POST", path, key, body, hdr...)
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	return out
}

// checkOneWinner: every answer is the one result (first or replayed) or 409 in use.
func checkOneWinner(t *testing.T, rs []*resp, okStatus int) {
	t.Helper()
	var results []string
	for _, r := range rs {
		switch r.Status {
		case okStatus:
			results = append(results, string(r.Raw))
		case http.StatusConflict:
			assert.Equal(t, "idempotency_key_in_use", r.errCode())
			assert.Equal(t, "1", r.Header.Get("Retry-After"))
		default:
			t.Errorf("unexpected %d %s", r.Status, r.Raw)
		}
	}
	require.NotEmpty(t, results)
	for _, b := range results {
		assert.Equal(t, results[0], b)
	}
}

func TestIdempotencyConcurrentRequests(t *testing.T) {
	s := getStack(t)
	pid, key := s.idemPractice(t, "Idempotent Races")
	rs := s.concurrently(t, 6, "/v1/clients", key, map[string]any{"name": "Ada Lovelace", "email": "ada@example.com"},
		"Idempotency-Key", "race-client")
	checkOneWinner(t, rs, 201)
	assert.Equal(t, 1, s.count(t, `SELECT count(*) FROM clients WHERE practice_id = $1`, pid), "one client")

	id := s.newInvoice(t, key, s.newClient(t, key), 7000, nil).str("id")
	rs = s.concurrently(t, 4, "/v1/invoices/"+id+"/payments", key, map[string]any{"amount": 7000, "payment_method": "pm_card_visa"},
		"Idempotency-Key", "race-pay")
	checkOneWinner(t, rs, 200)
	assert.Len(t, s.intentsFor(id), 1, "one charge")
	// Once it is settled, a retry is a replay.
	again, err := s.try("POST", "/v1/invoices/"+id+"/payments", key, map[string]any{"amount": 7000, "payment_method": "pm_card_visa"},
		"Idempotency-Key", "race-pay")
	require.NoError(t, err)
	assert.Equal(t, 200, again.Status)
	assert.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
}
