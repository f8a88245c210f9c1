package e2e

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// practiceToday is today in the demo practice's timezone (America/New_York),
// where billflow dates payments and defaults the account-history range.
func practiceToday(t *testing.T) time.Time {
	loc, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	n := time.Now().In(loc)
	return time.Date(n.Year(), n.Month(), n.Day(), 0, 0, 0, 0, time.UTC)
}

func day(t time.Time) string { return t.Format(time.DateOnly) }

// session is one invoice item for newInvoice's "items".
func session(date time.Time, desc string, amount int64, cpt string) map[string]any {
	return map[string]any{"service_date": day(date), "description": desc, "unit_amount": amount, "cpt_code": cpt,
		"diagnosis_codes": []string{"F41.1"}}
}

func (s *stack) pay(t *testing.T, key, invoiceID string, amount int64, extra map[string]any) *resp {
	body := map[string]any{"amount": amount, "payment_method": "pm_card_visa"}
	for k, v := range extra {
		body[k] = v
	}
	r := s.do(t, "POST", "/v1/invoices/"+invoiceID+"/payments", key, body)
	require.Equal(t, 200, r.Status, string(r.Raw))
	return r
}

func assertNotFound(t *testing.T, r *resp, msg string) {
	t.Helper()
	assert.Equal(t, 404, r.Status, msg)
	e, _ := r.Body["error"].(map[string]any)
	require.NotNil(t, e, "standard error shape: %s", r.Raw)
	assert.Equal(t, "invalid_request_error", e["type"], msg)
	assert.Equal(t, "resource_missing", e["code"], msg)
	assert.NotEmpty(t, e["message"], msg)
}

func TestBillingOverview(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	today := practiceToday(t)

	partly := s.newInvoice(t, s.Key, cl, 18000, map[string]any{"partial_payments": map[string]any{"enabled": true}}).str("id")
	paid := s.newInvoice(t, s.Key, cl, 9000, nil).str("id")
	open := s.newInvoice(t, s.Key, cl, 12000, nil).str("id")
	void := s.newInvoice(t, s.Key, cl, 5000, nil).str("id")
	s.pay(t, s.Key, partly, 6000, nil)
	s.pay(t, s.Key, paid, 9000, nil)
	require.Equal(t, 200, s.do(t, "POST", "/v1/invoices/"+void+"/void", s.Key, nil).Status)

	empty := s.do(t, "GET", "/v1/clients/"+cl+"/billing", s.Key, nil)
	require.Equal(t, 200, empty.Status, string(empty.Raw))
	assert.Empty(t, empty.Body["statements"])
	assert.Empty(t, empty.Body["superbills"])

	period := map[string]any{"from": day(today.AddDate(0, 0, -7)), "to": day(today)}
	st := s.do(t, "POST", "/v1/clients/"+cl+"/statements", s.Key, period)
	require.Equal(t, 201, st.Status, string(st.Raw))
	sb := s.do(t, "POST", "/v1/clients/"+cl+"/superbills", s.Key, period)
	require.Equal(t, 201, sb.Status, string(sb.Raw))

	b := s.do(t, "GET", "/v1/clients/"+cl+"/billing", s.Key, nil)
	require.Equal(t, 200, b.Status, string(b.Raw))
	assert.Equal(t, "billing", b.str("object"))
	assert.Equal(t, cl, b.str("client_id"))
	assert.Equal(t, map[string]any{"amount_due": float64(12000 + 12000), "currency": "usd"}, b.Body["balance"])
	assert.Equal(t, []any{map[string]any{"amount_due": float64(24000), "currency": "usd"}}, b.Body["balances"])

	// The invoices are exactly the items of GET /v1/invoices, open first
	// (newest first), then the paid one; the void one is left out.
	list := s.do(t, "GET", "/v1/invoices?client_id="+cl, s.Key, nil)
	require.Equal(t, 200, list.Status)
	byID := map[string]any{}
	for _, it := range list.Body["data"].([]any) {
		byID[it.(map[string]any)["id"].(string)] = it
	}
	invs := b.Body["invoices"].([]any)
	require.Len(t, invs, 3)
	var ids []string
	for _, it := range invs {
		id := it.(map[string]any)["id"].(string)
		ids = append(ids, id)
		assert.Equal(t, byID[id], it, "invoice %s as GET /v1/invoices lists it", id)
	}
	assert.Equal(t, []string{open, partly, paid}, ids)
	first := invs[1].(map[string]any)
	assert.Equal(t, "partially_paid", first["status"])
	assert.Equal(t, float64(6000), first["amount_paid"])
	assert.Equal(t, float64(12000), first["amount_due"])
	assert.Equal(t, "paid", invs[2].(map[string]any)["status"])

	stmts := b.Body["statements"].([]any)
	require.Len(t, stmts, 1)
	assert.Equal(t, st.Body, stmts[0], "the statement as POST /statements answered it")
	bills := b.Body["superbills"].([]any)
	require.Len(t, bills, 1)
	assert.Equal(t, sb.Body, bills[0])

	// The client's own portal token sees the same; nobody else sees anything.
	tok := s.portalToken(t, s.Key, cl)
	mine := s.do(t, "GET", "/v1/clients/"+cl+"/billing", tok, nil)
	require.Equal(t, 200, mine.Status, string(mine.Raw))
	assert.Equal(t, b.Body, mine.Body)
	assertNotFound(t, s.do(t, "GET", "/v1/clients/"+cl+"/billing", s.newPractice(t, "Elsewhere Wellness"), nil), "another practice's key")
	stranger := s.newClient(t, s.Key)
	assertNotFound(t, s.do(t, "GET", "/v1/clients/"+cl+"/billing", s.portalToken(t, s.Key, stranger), nil), "another client's token")
	assertNotFound(t, s.do(t, "GET", "/v1/clients/cli_nosuchclient/billing", s.Key, nil), "an unknown client")
	assert.Equal(t, 401, s.do(t, "GET", "/v1/clients/"+cl+"/billing", "", nil).Status)

	// A client with nothing billed owes 0 in the practice's currency.
	none := s.do(t, "GET", "/v1/clients/"+stranger+"/billing", s.Key, nil)
	require.Equal(t, 200, none.Status)
	assert.Equal(t, map[string]any{"amount_due": float64(0), "currency": "usd"}, none.Body["balance"])
	assert.Equal(t, []any{}, none.Body["balances"])
	assert.Equal(t, []any{}, none.Body["invoices"])

	// Paying the rest leaves a zero balance and every invoice settled.
	s.pay(t, s.Key, partly, 12000, nil)
	s.pay(t, s.Key, open, 12000, nil)
	after := s.do(t, "GET", "/v1/clients/"+cl+"/billing", tok, nil)
	require.Equal(t, 200, after.Status)
	assert.Equal(t, map[string]any{"amount_due": float64(0), "currency": "usd"}, after.Body["balance"])
	assert.Equal(t, []any{}, after.Body["balances"])
	for _, it := range after.Body["invoices"].([]any) {
		assert.Equal(t, "paid", it.(map[string]any)["status"])
	}
}

func TestAccountHistoryEntriesAndRange(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	today := practiceToday(t)

	a := s.newInvoice(t, s.Key, cl, 0, map[string]any{"items": []map[string]any{
		session(today.AddDate(0, 0, -60), "Intake assessment", 15000, "90791"),
		session(today.AddDate(0, 0, -10), "Individual therapy, 45 min", 9000, "90834"),
	}})
	b := s.newInvoice(t, s.Key, cl, 0, map[string]any{"items": []map[string]any{
		{"service_date": day(today), "description": "Family session", "unit_amount": 4500, "units": 2, "cpt_code": "90847"},
	}})
	v := s.newInvoice(t, s.Key, cl, 0, map[string]any{"items": []map[string]any{session(today, "Cancelled session", 9000, "90837")}})
	require.Equal(t, 200, s.do(t, "POST", "/v1/invoices/"+v.str("id")+"/void", s.Key, nil).Status)
	paid := s.pay(t, s.Key, a.str("id"), 24000, map[string]any{"payer_name": "Sam Lovelace"})
	payID := paid.Body["payment"].(map[string]any)["id"].(string)
	ref := s.do(t, "POST", "/v1/invoices/"+a.str("id")+"/refunds", s.Key, map[string]any{"amount": 3000, "reason": "Duplicate session charge"})
	require.Equal(t, 200, ref.Status, string(ref.Raw))
	refID := ref.Body["refund"].(map[string]any)["id"].(string)

	h := s.do(t, "GET", "/v1/clients/"+cl+"/account-history", s.Key, nil)
	require.Equal(t, 200, h.Status, string(h.Raw))
	assert.Equal(t, "account_history", h.str("object"))
	assert.Equal(t, cl, h.str("client_id"))
	assert.Equal(t, day(today.AddDate(0, 0, -90)), h.str("from"), "from defaults to 90 days before to")
	assert.Equal(t, day(today), h.str("to"), "to defaults to today in the practice's timezone")
	data := h.Body["data"].([]any)
	require.Len(t, data, 5, string(h.Raw))
	entry := func(i int) map[string]any { return data[i].(map[string]any) }
	assert.Equal(t, map[string]any{"date": day(today.AddDate(0, 0, -60)), "type": "session", "invoice_id": a.str("id"),
		"invoice_number": a.str("number"), "invoice_status": "partially_refunded", "amount": float64(15000), "currency": "usd", "service_date": day(today.AddDate(0, 0, -60)),
		"description": "Intake assessment", "cpt_code": "90791", "units": float64(1)}, entry(0))
	assert.Equal(t, "Individual therapy, 45 min", entry(1)["description"])
	// Today: the session first, then the payment, then the refund.
	assert.Equal(t, map[string]any{"date": day(today), "type": "session", "invoice_id": b.str("id"), "invoice_number": b.str("number"),
		"invoice_status": "open", "amount": float64(9000), "currency": "usd", "service_date": day(today), "description": "Family session", "cpt_code": "90847",
		"units": float64(2)}, entry(2))
	assert.Equal(t, map[string]any{"date": day(today), "type": "payment", "invoice_id": a.str("id"), "invoice_number": a.str("number"),
		"invoice_status": "partially_refunded", "amount": float64(24000), "currency": "usd", "payment_id": payID, "status": "succeeded", "method_label": "Visa •••• 4242",
		"payer_name": "Sam Lovelace"}, entry(3))
	assert.Equal(t, map[string]any{"date": day(today), "type": "refund", "invoice_id": a.str("id"), "invoice_number": a.str("number"),
		"invoice_status": "partially_refunded", "amount": float64(3000), "currency": "usd", "refund_id": refID, "payment_id": payID, "status": "succeeded",
		"reason": "Duplicate session charge"}, entry(4))

	// The client's own token reads the same history.
	tok := s.portalToken(t, s.Key, cl)
	mine := s.do(t, "GET", "/v1/clients/"+cl+"/account-history", tok, nil)
	require.Equal(t, 200, mine.Status)
	assert.Equal(t, h.Body, mine.Body)

	// Filtering by date: the intake 60 days ago drops out of the last 30 days.
	q := func(from, to string) *resp {
		v := url.Values{}
		if from != "" {
			v.Set("from", from)
		}
		if to != "" {
			v.Set("to", to)
		}
		return s.do(t, "GET", "/v1/clients/"+cl+"/account-history?"+v.Encode(), tok, nil)
	}
	types := func(r *resp) []string {
		var out []string
		for _, e := range r.Body["data"].([]any) {
			m := e.(map[string]any)
			out = append(out, fmt.Sprint(m["type"], " ", m["date"]))
		}
		return out
	}
	recent := q(day(today.AddDate(0, 0, -30)), "")
	require.Equal(t, 200, recent.Status, string(recent.Raw))
	assert.Equal(t, day(today), recent.str("to"))
	assert.Equal(t, []string{"session " + day(today.AddDate(0, 0, -10)), "session " + day(today), "payment " + day(today),
		"refund " + day(today)}, types(recent))
	older := q(day(today.AddDate(0, 0, -90)), day(today.AddDate(0, 0, -20)))
	require.Equal(t, 200, older.Status)
	assert.Equal(t, []string{"session " + day(today.AddDate(0, 0, -60))}, types(older))
	onlyTo := q("", day(today.AddDate(0, 0, -1)))
	require.Equal(t, 200, onlyTo.Status)
	assert.Equal(t, day(today.AddDate(0, 0, -91)), onlyTo.str("from"), "from defaults to 90 days before the given to")
	assert.Len(t, onlyTo.Body["data"], 2)
	three := q("2021-01-01", "2024-01-01")
	assert.Equal(t, 200, three.Status, "exactly three years is allowed")
	assert.Empty(t, three.Body["data"])

	// Bad ranges name the parameter.
	for _, tc := range []struct{ from, to, param, msg string }{
		{"2026-13-01", "", "from", "from must be a date as YYYY-MM-DD"},
		{"yesterday", "", "from", "from must be a date as YYYY-MM-DD"},
		{"", "2026-02-30", "to", "to must be a date as YYYY-MM-DD"},
		{"2026-03-02", "2026-03-01", "from", "from (2026-03-02) must be on or before to (2026-03-01)"},
		{"2021-01-01", "2024-01-02", "from", "the range 2021-01-01 to 2024-01-02 is longer than 3 years"},
		{day(today.AddDate(0, 0, 1)), "", "from", "must be on or before to"},
	} {
		r := q(tc.from, tc.to)
		assert.Equal(t, 400, r.Status, "%+v", tc)
		e, _ := r.Body["error"].(map[string]any)
		require.NotNil(t, e, string(r.Raw))
		assert.Equal(t, "invalid_request_error", e["type"])
		assert.Equal(t, "parameter_invalid", e["code"])
		assert.Equal(t, tc.param, e["param"], "%+v", tc)
		assert.Contains(t, e["message"], tc.msg)
	}

	// Nobody else reads it.
	assertNotFound(t, s.do(t, "GET", "/v1/clients/"+cl+"/account-history", s.newPractice(t, "Elsewhere Wellness"), nil), "another practice's key")
	stranger := s.newClient(t, s.Key)
	assertNotFound(t, s.do(t, "GET", "/v1/clients/"+cl+"/account-history", s.portalToken(t, s.Key, stranger), nil), "another client's token")
	// A bad range for someone else's client is still 404: nothing about it is told.
	assertNotFound(t, s.do(t, "GET", "/v1/clients/"+cl+"/account-history?from=nonsense", s.portalToken(t, s.Key, stranger), nil), "404 before 400")
}
