package e2e

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/billflow/billflow/app"
	"github.com/billflow/billflow/codec"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/tenancy"
)

// Issue 17 item 2: a practitioner sees only their own practice in the
// Temporal UI. Practice A's invoice runs only in A's namespace, every payload
// under A's data key; the codec endpoint decodes them for A's key (and the
// local UI showing A's namespace) and refuses B's key, no key, and A's key on
// the shared namespace's payloads.
func TestPracticesHaveTheirOwnNamespaceAndDataKey(t *testing.T) {
	s := getStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	made := time.Now()
	a, keyA, err := app.CreatePractice(ctx, s.Config, s.Store, s.Temporal, store.NewPractice{Name: "Aloha Counseling", Currency: "usd",
		Timezone: "Pacific/Honolulu"})
	require.NoError(t, err)
	t.Logf("practice create (namespace, search attributes, data key): %s", time.Since(made).Round(time.Millisecond))
	_, keyB, err := app.CreatePractice(ctx, s.Config, s.Store, s.Temporal, store.NewPractice{Name: "Bayside Nutrition", Currency: "usd"})
	require.NoError(t, err)
	nsA := a.TemporalNamespace
	require.Equal(t, tenancy.Namespace(a.ID), nsA)
	require.Eventually(t, func() bool { return slices.Contains(s.Practices.Namespaces(), nsA) }, 20*time.Second, 50*time.Millisecond)
	t.Logf("worker picked up the new namespace %s after practice create", time.Since(made).Round(time.Millisecond))

	// An invoice of A's, paid in part, in A's namespace only.
	loc, err := time.LoadLocation("Pacific/Honolulu")
	require.NoError(t, err)
	today := time.Now().In(loc).Format(time.DateOnly)
	cl := s.newClient(t, keyA)
	inv := s.newInvoice(t, keyA, cl, 12000, map[string]any{"due_date": today, "partial_payments": map[string]any{"enabled": true},
		"items": []map[string]any{{"service_date": today, "description": "Counseling, 53 min", "unit_amount": 12000, "diagnosis_codes": []string{"F41.1"}}}})
	id := inv.str("id")
	pay := s.do(t, "POST", "/v1/invoices/"+id+"/payments", keyA, map[string]any{"amount": 5000, "payment_method": "pm_card_visa"})
	require.Equal(t, 200, pay.Status, string(pay.Raw))
	tcA, err := s.Tenants.ForNamespace(nsA)
	require.NoError(t, err)
	wfID := contract.InvoiceWorkflowID(id)
	_, err = s.Temporal.DescribeWorkflowExecution(ctx, wfID, "")
	var nf *serviceerror.NotFound
	require.ErrorAs(t, err, &nf, "A's invoice must not run in the shared namespace")
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		res, err := tcA.WorkflowService().ListWorkflowExecutions(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: nsA,
			Query: "PracticeId = '" + a.ID + "' AND InvoiceStatus = 'partially_paid' AND AmountDue = 7000"})
		if assert.NoError(c, err) && assert.Len(c, res.Executions, 1) {
			assert.Equal(c, wfID, res.Executions[0].Execution.WorkflowId)
		}
	}, 20*time.Second, 200*time.Millisecond, "search attributes in A's namespace")

	// A's Schedules, on A's clock.
	for _, id := range []string{contract.ReminderRunID, contract.StatementRunID, contract.ReconcileRunID} {
		d, err := tcA.ScheduleClient().GetHandle(ctx, id).Describe(ctx)
		require.NoError(t, err, id)
		require.Equal(t, "Pacific/Honolulu", d.Schedule.Spec.TimeZoneName, id)
	}

	// Every payload in A's history is under one of A's data keys.
	keysA := map[string]bool{}
	all, err := s.Store.DataKeys(ctx)
	require.NoError(t, err)
	for _, k := range all {
		if k.PracticeID == a.ID {
			keysA[k.KeyID] = true
		}
	}
	// Every payload in A's history, summaries included (search attributes
	// aside), is under one of A's data keys.
	var encrypted, summaries []*commonpb.Payload
	it := tcA.GetWorkflowHistory(ctx, wfID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		for _, p := range payloadsIn(ev) {
			require.Equal(t, codec.EncodingName, string(p.Metadata[codec.MetadataEncoding]), "a payload in the clear in event %s", ev.EventType)
			require.True(t, keysA[string(p.Metadata[codec.MetadataKeyID])], "payload under key %s in event %s", p.Metadata[codec.MetadataKeyID], ev.EventType)
			encrypted = append(encrypted, p)
		}
		if s := ev.GetUserMetadata().GetSummary(); s != nil {
			summaries = append(summaries, s)
		}
	}
	require.GreaterOrEqual(t, len(encrypted), 4, "input, Update, charge and results are encrypted")
	require.NotEmpty(t, summaries, "the charge's summary")

	decode := func(key string, payloads []*commonpb.Payload, hdr ...string) *resp {
		raw, err := protojson.Marshal(&commonpb.Payloads{Payloads: payloads})
		require.NoError(t, err)
		return s.do(t, http.MethodPost, "/codec/decode", key, string(raw), hdr...)
	}
	for name, r := range map[string]*resp{
		"B's key":                     decode(keyB, encrypted),
		"no key":                      decode("", encrypted),
		"no key naming B's namespace": decode("", encrypted, "X-Namespace", tenancy.Namespace("prac_someoneelse")),
	} {
		require.Equal(t, http.StatusForbidden, r.Status, "%s: %s", name, r.Raw)
		require.Equal(t, "forbidden", r.errCode(), name)
		require.NotContains(t, string(r.Raw), "Counseling", name)
	}
	okA := decode(keyA, encrypted)
	require.Equal(t, http.StatusOK, okA.Status, string(okA.Raw))
	var plain commonpb.Payloads
	require.NoError(t, protojson.Unmarshal(okA.Raw, &plain))
	require.Len(t, plain.Payloads, len(encrypted))
	var decoded []string
	for _, p := range plain.Payloads {
		require.NotEqual(t, codec.EncodingName, string(p.Metadata[codec.MetadataEncoding]))
		decoded = append(decoded, string(p.Data))
	}
	require.Contains(t, strings.Join(decoded, "\n"), `"InvoiceID":"`+id+`"`, "the invoice's input, decoded")
	ui := decode("", encrypted, "X-Namespace", nsA)
	require.Equal(t, http.StatusOK, ui.Status, "the local UI showing A's namespace: %s", ui.Raw)
	// Summaries read through the codec with A's key, and only with it.
	sum := decode(keyA, summaries)
	require.Equal(t, http.StatusOK, sum.Status, string(sum.Raw))
	require.NoError(t, protojson.Unmarshal(sum.Raw, &plain))
	var texts []string
	for _, p := range plain.Payloads {
		require.Equal(t, "json/plain", string(p.Metadata[codec.MetadataEncoding]))
		texts = append(texts, string(p.Data))
	}
	require.Contains(t, strings.Join(texts, "\n"), inv.str("number"), "the workflow's summary, decoded")
	require.Equal(t, http.StatusForbidden, decode(keyB, summaries).Status)

	// Shared-namespace (master key) payloads are not A's.
	shared, err := s.Tenants.Keyring.Master().Encode([]*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"x"`)}})
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, decode(keyA, shared).Status)

	// After rotating A's key, its old payloads still decode.
	_, err = tenancy.RotateDataKey(ctx, s.Store, s.Tenants.Keyring.Master(), a.ID)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, decode(keyA, encrypted).Status)
}

// payloadsIn collects every Payload anywhere in a history event.
func payloadsIn(ev *historypb.HistoryEvent) []*commonpb.Payload {
	var out []*commonpb.Payload
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		switch v := m.Interface().(type) {
		case *commonpb.Payload:
			out = append(out, v)
			return
		case *commonpb.SearchAttributes:
			return // never encoded: the UI filters on them
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsList() && fd.Message() != nil:
				for i := range v.List().Len() {
					walk(v.List().Get(i).Message())
				}
			case fd.IsMap() && fd.MapValue().Message() != nil:
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool { walk(mv.Message()); return true })
			case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
				walk(v.Message())
			}
			return true
		})
	}
	walk(proto.Clone(ev).ProtoReflect())
	return out
}

// A practice whose namespace registration was cut short (the row names the
// namespace, Temporal does not have it) never runs in the shared namespace:
// its invoice's start fails (503) until `billflow temporal setup` finishes
// the registration; then the retry starts it in the practice's namespace.
func TestCutShortRegistrationNeverFallsBackToTheSharedNamespace(t *testing.T) {
	s := getStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id := store.NewID("prac")
	dk, _, err := tenancy.NewDataKey(s.Tenants.Keyring.Master(), id)
	require.NoError(t, err)
	p, key, err := s.Store.CreatePractice(ctx, store.NewPractice{ID: id, Name: "Cut Short Wellness", Currency: "usd", Timezone: "UTC",
		TemporalNamespace: tenancy.Namespace(id), DataKey: &dk})
	require.NoError(t, err)
	cl := s.newClient(t, key)
	body := invoiceBody(cl, 6400)
	first := s.do(t, "POST", "/v1/invoices", key, body, "Idempotency-Key", "cut-short")
	require.Equal(t, 503, first.Status, string(first.Raw))
	var invID string
	require.NoError(t, s.Store.Pool.QueryRow(ctx, `SELECT id FROM invoices WHERE practice_id=$1`, p.ID).Scan(&invID))
	require.False(t, s.workflowRunning(t, invID), "nothing started in the shared namespace")

	require.NoError(t, tenancy.SetupNamespaces(ctx, s.Store, s.Temporal))
	// Every Temporal service learns of the new namespace within its cache
	// refresh; until then a retry may still be answered 503.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		retry := s.do(t, "POST", "/v1/invoices", key, body, "Idempotency-Key", "cut-short")
		assert.Equal(c, 201, retry.Status, string(retry.Raw))
	}, 30*time.Second, 500*time.Millisecond)
	tc, err := s.Tenants.ForNamespace(p.TemporalNamespace)
	require.NoError(t, err)
	_, err = tc.DescribeWorkflowExecution(ctx, contract.InvoiceWorkflowID(invID), "")
	require.NoError(t, err, "started in the practice's namespace")
	require.False(t, s.workflowRunning(t, invID))
}
