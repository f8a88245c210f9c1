package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/worker"
	"github.com/billflow/billflow/workflows"
)

// download GETs a PDF route and returns the response (body read) and its bytes.
func (s *stack) download(t *testing.T, path, key string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", s.API.URL+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, b
}

// pdfText reads a PDF back with pdftotext -layout.
func pdfText(t *testing.T, b []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "doc.pdf")
	require.NoError(t, os.WriteFile(f, b, 0o600))
	out, err := exec.Command("pdftotext", "-layout", f, "-").CombinedOutput()
	require.NoError(t, err, string(out))
	return string(out)
}

func dateOnly(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func TestInvoicePDFAndReceiptDownload(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	inv := s.newInvoice(t, s.Key, cl, 18000, nil)
	id, number := inv.str("id"), inv.str("number")

	var body []byte
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		res, b := s.download(t, "/v1/invoices/"+id+"/pdf", s.Key)
		if !assert.Equal(c, 200, res.StatusCode, string(b)) {
			return
		}
		assert.Equal(c, "application/pdf", res.Header.Get("Content-Type"))
		assert.Equal(c, `inline; filename="`+number+`.pdf"`, res.Header.Get("Content-Disposition"))
		body = b
	}, 30*time.Second, 200*time.Millisecond, "the issue activity stores the invoice PDF")
	require.True(t, strings.HasPrefix(string(body), "%PDF-"))
	text := pdfText(t, body)
	assert.Contains(t, text, number)
	assert.Contains(t, text, "$180.00")

	// Other practices never see it, nor does another client's portal token.
	other := s.newPractice(t, "Elsewhere Wellness")
	res, _ := s.download(t, "/v1/invoices/"+id+"/pdf", other)
	assert.Equal(t, 404, res.StatusCode)
	otherClient := s.newClient(t, s.Key)
	res, _ = s.download(t, "/v1/invoices/"+id+"/pdf", s.portalToken(t, s.Key, otherClient))
	assert.Equal(t, 404, res.StatusCode)
	res, _ = s.download(t, "/v1/invoices/"+id+"/pdf", s.portalToken(t, s.Key, cl))
	assert.Equal(t, 200, res.StatusCode, "the client itself may download it")
	res, _ = s.download(t, "/v1/invoices/inv_doesnotexist/pdf", s.Key)
	assert.Equal(t, 404, res.StatusCode)

	doc, err := s.Store.LatestInvoiceDocument(context.Background(), id)
	require.NoError(t, err)
	res, b := s.download(t, "/v1/documents/"+doc.ID+"/pdf", s.Key)
	require.Equal(t, 200, res.StatusCode)
	assert.Equal(t, `inline; filename="`+number+`.pdf"`, res.Header.Get("Content-Disposition"))
	assert.Equal(t, body, b)
	res, _ = s.download(t, "/v1/documents/"+doc.ID+"/pdf", other)
	assert.Equal(t, 404, res.StatusCode, "another practice's document")
	res, _ = s.download(t, "/v1/documents/doc_doesnotexist/pdf", s.Key)
	assert.Equal(t, 404, res.StatusCode)

	// Paid: the download becomes the receipt.
	pay := s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 18000, "payment_method": "pm_card_visa"})
	require.Equal(t, 200, pay.Status, string(pay.Raw))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		res, b := s.download(t, "/v1/invoices/"+id+"/pdf", s.Key)
		if !assert.Equal(c, 200, res.StatusCode) {
			return
		}
		assert.Equal(c, `inline; filename="Receipt `+number+`.pdf"`, res.Header.Get("Content-Disposition"))
		body = b
	}, 30*time.Second, 200*time.Millisecond)
	text = pdfText(t, body)
	assert.Contains(t, text, "PAID")
	assert.Contains(t, text, number)
}

func TestInvoicePDFNotReadyYet(t *testing.T) {
	s := getStack(t)
	ctx := context.Background()
	cl := s.newClient(t, s.Key)
	today := dateOnly(time.Now())
	// Stored without its workflow: no PDF has been rendered.
	inv, err := s.Store.CreateInvoice(ctx, store.NewInvoice{PracticeID: s.Practice, ClientID: cl, Currency: "usd", IssueDate: today,
		DueDate: today.AddDate(0, 0, 7), Items: []store.Item{{ServiceDate: today, Description: "Session", Units: 1, UnitAmount: 9000}}})
	require.NoError(t, err)
	r := s.do(t, "GET", "/v1/invoices/"+inv.ID+"/pdf", s.Key, nil)
	require.Equal(t, 404, r.Status)
	assert.Equal(t, "document_not_ready", r.errCode())
	assert.Contains(t, string(r.Raw), "not ready yet")
}

func TestStatementAndSuperbillOnDemand(t *testing.T) {
	s := getStack(t)
	ctx := context.Background()
	cl := s.newClient(t, s.Key)
	today := dateOnly(time.Now())
	// An older invoice, issued before the period, opens the balance at $50.00.
	old, err := s.Store.CreateInvoice(ctx, store.NewInvoice{PracticeID: s.Practice, ClientID: cl, Currency: "usd",
		IssueDate: today.AddDate(0, 0, -60), DueDate: today.AddDate(0, 0, -46), Items: []store.Item{{ServiceDate: today.AddDate(0, 0, -60),
			Description: "Intake", CPTCode: "90791", Units: 1, UnitAmount: 5000}}})
	require.NoError(t, err)
	paid := s.newInvoice(t, s.Key, cl, 18000, nil)
	open := s.newInvoice(t, s.Key, cl, 9000, map[string]any{"items": []map[string]any{{"service_date": today.Format(time.DateOnly),
		"description": "Psychotherapy, 45 min", "unit_amount": 9000, "cpt_code": "90834", "diagnosis_codes": []string{"F32.1"}, "place_of_service": "10"}}})
	pay := s.do(t, "POST", "/v1/invoices/"+paid.str("id")+"/payments", s.Key, map[string]any{"amount": 18000, "payment_method": "pm_card_visa"})
	require.Equal(t, 200, pay.Status, string(pay.Raw))

	period := map[string]any{"from": today.AddDate(0, 0, -20).Format(time.DateOnly), "to": today.AddDate(0, 0, 1).Format(time.DateOnly)}
	st := s.do(t, "POST", "/v1/clients/"+cl+"/statements", s.Key, period)
	require.Equal(t, 201, st.Status, string(st.Raw))
	assert.Equal(t, "document", st.str("object"))
	assert.Equal(t, "statement", st.str("kind"))
	assert.Equal(t, cl, st.str("client_id"))
	assert.Equal(t, period["from"], st.str("period_from"))
	assert.Equal(t, period["to"], st.str("period_to"))
	assert.Equal(t, "/v1/documents/"+st.str("id")+"/pdf", st.str("pdf_url"))
	assert.Positive(t, st.num("size"))
	assert.NotEmpty(t, st.str("created_at"))

	res, b := s.download(t, st.str("pdf_url"), s.Key)
	require.Equal(t, 200, res.StatusCode)
	assert.Contains(t, res.Header.Get("Content-Disposition"), `filename="Statement `)
	text := pdfText(t, b)
	for _, want := range []string{"STATEMENT", "Opening balance", "$50.00", paid.str("number"), open.str("number"), "$180.00", "$90.00",
		"Visa", "Closing balance", "$140.00"} {
		assert.Contains(t, text, want)
	}
	assert.NotContains(t, text, old.Number, "an invoice before the period is in the opening balance, not a line")

	// The same period again: same account, same bytes, the same stored document.
	again := s.do(t, "POST", "/v1/clients/"+cl+"/statements", s.Key, period)
	require.Equal(t, 201, again.Status, string(again.Raw))
	assert.Equal(t, st.str("id"), again.str("id"))

	sb := s.do(t, "POST", "/v1/clients/"+cl+"/superbills", s.Key, period)
	require.Equal(t, 201, sb.Status, string(sb.Raw))
	assert.Equal(t, "superbill", sb.str("kind"))
	res, b = s.download(t, sb.str("pdf_url"), s.Key)
	require.Equal(t, 200, res.StatusCode)
	assert.Contains(t, res.Header.Get("Content-Disposition"), `filename="Superbill `)
	text = pdfText(t, b)
	for _, want := range []string{"Ada Lovelace", "90837", "90834", "F41.1", "F32.1", "$180.00", "$90.00"} {
		assert.Contains(t, text, want)
	}
	assert.NotContains(t, text, "90791", "the intake was before the period")
	assert.NotContains(t, text, "Paid in full", "one invoice is unpaid")

	// The client's own portal token sees and makes its documents; nobody else does.
	tok := s.portalToken(t, s.Key, cl)
	res, _ = s.download(t, sb.str("pdf_url"), tok)
	assert.Equal(t, 200, res.StatusCode)
	assert.Equal(t, 201, s.do(t, "POST", "/v1/clients/"+cl+"/statements", tok, period).Status)
	stranger := s.newClient(t, s.Key)
	strangerTok := s.portalToken(t, s.Key, stranger)
	res, _ = s.download(t, sb.str("pdf_url"), strangerTok)
	assert.Equal(t, 404, res.StatusCode, "another client's document")
	assert.Equal(t, 404, s.do(t, "POST", "/v1/clients/"+cl+"/statements", strangerTok, period).Status)
	other := s.newPractice(t, "Elsewhere Nutrition")
	res, _ = s.download(t, st.str("pdf_url"), other)
	assert.Equal(t, 404, res.StatusCode, "another practice's document")
	r := s.do(t, "POST", "/v1/clients/"+cl+"/superbills", other, period)
	assert.Equal(t, 404, r.Status, "another practice's client")
	assert.Equal(t, "resource_missing", r.errCode())

	// A fully paid period says so.
	paidOnly := map[string]any{"from": period["from"], "to": period["to"]}
	cl2 := s.newClient(t, s.Key)
	inv2 := s.newInvoice(t, s.Key, cl2, 15000, nil)
	require.Equal(t, 200, s.do(t, "POST", "/v1/invoices/"+inv2.str("id")+"/payments", s.Key,
		map[string]any{"amount": 15000, "payment_method": "pm_card_visa"}).Status)
	sb2 := s.do(t, "POST", "/v1/clients/"+cl2+"/superbills", s.Key, paidOnly)
	require.Equal(t, 201, sb2.Status, string(sb2.Raw))
	_, b = s.download(t, sb2.str("pdf_url"), s.Key)
	assert.Contains(t, pdfText(t, b), "Paid in full")
}

func TestClientDocumentBadInput(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	for _, tc := range []struct {
		name, body, param, code string
	}{
		{"empty body", ``, "", "invalid_json"},
		{"missing from", `{"to":"2026-01-31"}`, "from", "parameter_invalid"},
		{"missing to", `{"from":"2026-01-01"}`, "to", "parameter_invalid"},
		{"not a date", `{"from":"01/02/2026","to":"2026-01-31"}`, "from", "parameter_invalid"},
		{"to before from", `{"from":"2026-02-01","to":"2026-01-31"}`, "to", "parameter_invalid"},
		{"over a year", `{"from":"2025-01-01","to":"2026-01-02"}`, "to", "parameter_invalid"},
		{"unknown field", `{"from":"2026-01-01","to":"2026-01-31","currency":"usd"}`, "currency", "invalid_json"},
		{"wrong type", `{"from":20260101,"to":"2026-01-31"}`, "from", "invalid_json"},
		{"trailing data", `{"from":"2026-01-01","to":"2026-01-31"} {}`, "", "invalid_json"},
	} {
		for _, kind := range []string{"statements", "superbills"} {
			r := s.do(t, "POST", "/v1/clients/"+cl+"/"+kind, s.Key, tc.body)
			assert.Equal(t, 400, r.Status, "%s %s: %s", kind, tc.name, r.Raw)
			assert.Equal(t, tc.code, r.errCode(), "%s %s", kind, tc.name)
			if tc.param != "" {
				e, _ := r.Body["error"].(map[string]any)
				assert.Equal(t, tc.param, e["param"], "%s %s", kind, tc.name)
			}
		}
	}
	// 366 days is the longest period.
	assert.Equal(t, 201, s.do(t, "POST", "/v1/clients/"+cl+"/statements", s.Key, `{"from":"2025-01-01","to":"2026-01-01"}`).Status)
	// A superbill needs services in the period.
	r := s.do(t, "POST", "/v1/clients/"+cl+"/superbills", s.Key, `{"from":"2020-01-01","to":"2020-01-31"}`)
	assert.Equal(t, 400, r.Status, string(r.Raw))
	assert.Equal(t, "no_services_in_period", r.errCode())
	assert.Equal(t, 404, s.do(t, "POST", "/v1/clients/cli_doesnotexist/statements", s.Key, `{"from":"2026-01-01","to":"2026-01-31"}`).Status)
}

func TestStatementRunOverHundredsOfClients(t *testing.T) {
	s := getStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const n = 300
	now := time.Now().UTC()
	from := time.Date(now.Year(), now.Month()-1, 1, 0, 0, 0, 0, time.UTC)
	month := from.Format("2006-01")
	to := from.AddDate(0, 1, -1)

	p, _, err := s.Store.CreatePractice(ctx, store.NewPractice{Name: "Statement Run Practice", Currency: "usd", Timezone: "UTC"})
	require.NoError(t, err)
	clients := map[string]bool{}
	for i := 0; i < n; i++ {
		c, err := s.Store.CreateClient(ctx, &store.Client{PracticeID: p.ID, Name: fmt.Sprintf("Client %d", i), Email: fmt.Sprintf("c%d@example.com", i)})
		require.NoError(t, err)
		day := from.AddDate(0, 0, i%28)
		_, err = s.Store.CreateInvoice(ctx, store.NewInvoice{PracticeID: p.ID, ClientID: c.ID, Currency: "usd", IssueDate: day,
			DueDate: day.AddDate(0, 0, 14), Items: []store.Item{{ServiceDate: day, Description: "Session", CPTCode: "90837", Units: 1,
				UnitAmount: int64(9000 + i)}}})
		require.NoError(t, err)
		clients[c.ID] = true
	}
	// A client whose only invoice is older has no activity last month: no statement.
	quiet, err := s.Store.CreateClient(ctx, &store.Client{PracticeID: p.ID, Name: "Quiet", Email: "quiet@example.com"})
	require.NoError(t, err)
	_, err = s.Store.CreateInvoice(ctx, store.NewInvoice{PracticeID: p.ID, ClientID: quiet.ID, Currency: "usd", IssueDate: from.AddDate(0, 0, -3),
		DueDate: from, Items: []store.Item{{ServiceDate: from.AddDate(0, 0, -3), Description: "Session", Units: 1, UnitAmount: 9000}}})
	require.NoError(t, err)

	runOnce := func(tag string) *contract.StatementRunResult {
		start := time.Now()
		run, err := s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("statement-run-e2e-%s-%d", tag, start.UnixNano()),
			TaskQueue: contract.TaskQueue}, workflows.StatementRunWorkflow, &contract.StatementRunInput{Month: month, ContinueAfter: 200})
		require.NoError(t, err)
		var res contract.StatementRunResult
		require.NoError(t, run.Get(ctx, &res))
		t.Logf("%s run: %+v in %s", tag, res, time.Since(start).Round(time.Millisecond))
		return &res
	}
	statementMails := func() map[string]int {
		out := map[string]int{}
		for _, m := range s.Mail.Messages() {
			id, _, ok := strings.Cut(strings.TrimPrefix(m.MessageID, "<"), ".statement."+month)
			if ok && clients[id] {
				out[id]++
			}
		}
		return out
	}

	first := runOnce("first")
	assert.Equal(t, month, first.Month)
	assert.GreaterOrEqual(t, first.Clients, n)
	assert.Zero(t, first.Failed)
	for id := range clients {
		docs, err := s.Store.PeriodDocuments(ctx, p.ID, id, "statement", from, to)
		require.NoError(t, err)
		require.Len(t, docs, 1, "one statement for %s", id)
	}
	docs, err := s.Store.PeriodDocuments(ctx, p.ID, quiet.ID, "statement", from, to)
	require.NoError(t, err)
	assert.Empty(t, docs, "no activity, no statement")
	mails := statementMails()
	require.Len(t, mails, n, "a statement email to every client")
	for id, k := range mails {
		require.Equal(t, 1, k, "one statement email for %s", id)
	}
	var sample string
	for id := range clients {
		sample = id
		break
	}
	for _, m := range s.Mail.Messages() {
		if strings.HasPrefix(m.MessageID, "<"+sample+".statement.") {
			assert.Equal(t, "statement_ready", kindOf(m))
			assert.Contains(t, m.Text, s.API.URL+"/portal?token=bf_pt_")
			// The link's token signs this client in, and only this client.
			if tok := regexp.MustCompile(`/portal\?token=(bf_pt_[A-Za-z0-9_%-]+)`).FindStringSubmatch(m.Text); assert.NotNil(t, tok) {
				assert.Equal(t, 200, s.do(t, "GET", "/v1/clients/"+sample+"/billing", tok[1], nil).Status)
				for other := range clients {
					if other != sample {
						assert.Equal(t, 404, s.do(t, "GET", "/v1/clients/"+other+"/billing", tok[1], nil).Status)
						break
					}
				}
			}
			if assert.Len(t, m.Attachments, 1) {
				assert.Equal(t, "Statement "+month+".pdf", m.Attachments[0].Filename)
				assert.Equal(t, "application/pdf", m.Attachments[0].ContentType)
			}
		}
	}
	var sent int
	require.NoError(t, s.Store.Pool.QueryRow(ctx, `SELECT count(*) FROM emails WHERE practice_id=$1 AND kind='statement_ready' AND status='sent'`,
		p.ID).Scan(&sent))
	assert.Equal(t, n, sent)

	// Run it again: every client is passed over; nothing is sent or stored twice.
	second := runOnce("second")
	assert.Zero(t, second.Emailed)
	assert.GreaterOrEqual(t, second.AlreadySent, n)
	assert.Equal(t, mails, statementMails())
	var stored int
	require.NoError(t, s.Store.Pool.QueryRow(ctx, `SELECT count(*) FROM documents WHERE practice_id=$1 AND kind='statement'`, p.ID).Scan(&stored))
	assert.Equal(t, n, stored)
}

func TestStatementRunSchedule(t *testing.T) {
	s := getStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Cleanup(func() {
		// The Schedules must not fire into other tests of this package.
		for _, id := range []string{contract.StatementRunID, contract.ReminderRunID} {
			_ = s.Temporal.ScheduleClient().GetHandle(context.Background(), id).Delete(context.Background())
		}
	})
	// Twice: the second call updates the existing Schedule instead of failing.
	require.NoError(t, worker.EnsureSchedules(ctx, s.Temporal, worker.ScheduleOptions{ReminderHour: 9}))
	require.NoError(t, worker.EnsureSchedules(ctx, s.Temporal, worker.ScheduleOptions{ReminderHour: 9}))
	desc, err := s.Temporal.ScheduleClient().GetHandle(ctx, contract.StatementRunID).Describe(ctx)
	require.NoError(t, err)
	sched := desc.Schedule
	action, ok := sched.Action.(*client.ScheduleWorkflowAction)
	require.True(t, ok, "%T", sched.Action)
	assert.Equal(t, contract.StatementRunID, action.ID)
	assert.Equal(t, "StatementRunWorkflow", action.Workflow)
	assert.Equal(t, contract.TaskQueue, action.TaskQueue)
	assert.Equal(t, enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, sched.Policy.Overlap)
	// A multi-day outage over the 1st (server or every worker down) still
	// sends the month's statements when it ends.
	assert.GreaterOrEqual(t, sched.Policy.CatchupWindow, 7*24*time.Hour)
	require.Len(t, sched.Spec.Calendars, 1)
	cal := sched.Spec.Calendars[0]
	assert.Equal(t, 6, cal.Hour[0].Start)
	assert.Equal(t, 1, cal.DayOfMonth[0].Start)
	require.NotEmpty(t, desc.Info.NextActionTimes)
	next := desc.Info.NextActionTimes[0].UTC()
	assert.Equal(t, 1, next.Day())
	assert.Equal(t, 6, next.Hour())
	assert.Equal(t, 0, next.Minute())
	require.Error(t, worker.EnsureSchedules(ctx, s.Temporal, worker.ScheduleOptions{ReminderHour: 24}))

	// reminder-run: daily at the configured hour; a new hour updates it in place.
	for _, hour := range []int{9, 14} {
		require.NoError(t, worker.EnsureSchedules(ctx, s.Temporal, worker.ScheduleOptions{ReminderHour: hour}))
		rd, err := s.Temporal.ScheduleClient().GetHandle(ctx, contract.ReminderRunID).Describe(ctx)
		require.NoError(t, err)
		ra, ok := rd.Schedule.Action.(*client.ScheduleWorkflowAction)
		require.True(t, ok, "%T", rd.Schedule.Action)
		assert.Equal(t, "ReminderRunWorkflow", ra.Workflow)
		assert.Equal(t, contract.TaskQueue, ra.TaskQueue)
		assert.Equal(t, enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, rd.Schedule.Policy.Overlap)
		require.Len(t, rd.Schedule.Spec.Calendars, 1)
		assert.Equal(t, hour, rd.Schedule.Spec.Calendars[0].Hour[0].Start)
		require.NotEmpty(t, rd.Info.NextActionTimes)
		rn := rd.Info.NextActionTimes[0].UTC()
		assert.Equal(t, hour, rn.Hour())
		assert.Equal(t, 0, rn.Minute())
		assert.WithinDuration(t, time.Now(), rn, 24*time.Hour)
	}
}
