package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/billflow/billflow/contract"
)

// Temporal stores payloads encrypted; the codec endpoint decrypts them for a
// practice key; and even decrypted, payloads carry IDs and amounts, never
// descriptions, diagnosis codes or names.
func TestPayloadsEncryptedAndFreeOfHealthInfo(t *testing.T) {
	s := getStack(t)
	inv := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 18000, nil)
	id := inv.str("id")
	r := s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 18000, "payment_method": "pm_card_visa", "payer_name": "Ada Lovelace"})
	require.Equal(t, 200, r.Status, string(r.Raw))

	// A client without the codec sees only ciphertext.
	plain, err := client.Dial(client.Options{HostPort: s.Config.TemporalAddress, Namespace: s.Config.TemporalNamespace})
	require.NoError(t, err)
	defer plain.Close()
	var history strings.Builder
	var summaries []string
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		history.Reset()
		summaries = nil
		it := plain.GetWorkflowHistory(context.Background(), contract.InvoiceWorkflowID(id), "", false, 0)
		for it.HasNext() {
			ev, err := it.Next()
			if !assert.NoError(c, err) {
				return
			}
			history.WriteString(protojson.Format(ev))
			if p := ev.GetUserMetadata().GetSummary(); p != nil {
				var sum string
				// Summaries are never encrypted: the default converter reads them.
				if assert.NoError(c, converter.GetDefaultDataConverter().FromPayload(p, &sum)) {
					summaries = append(summaries, sum)
				}
			}
		}
		assert.Contains(c, history.String(), "EVENT_TYPE_ACTIVITY_TASK_COMPLETED")
		assert.Contains(c, strings.Join(summaries, "\n"), "Render receipt", "the receipt activity is scheduled")
	}, 10*time.Second, 200*time.Millisecond)
	h := history.String()
	assert.Contains(t, h, "YmluYXJ5L2VuY3J5cHRlZA==", "payload metadata says binary/encrypted")
	for _, secret := range []string{"Individual therapy", "F41.1", "Ada Lovelace", "pm_card_visa"} {
		assert.NotContains(t, h, secret)
		assert.NotContains(t, strings.Join(summaries, "\n"), secret)
	}
	assert.Contains(t, summaries, "Charge $180.00 to Visa •••• 4242", "the charge's summary reads in the clear")

	// The codec endpoint decrypts for a practice key, and what it decrypts has no health info.
	payloads := extractPayloads(t, h)
	require.NotEmpty(t, payloads)
	body, _ := json.Marshal(map[string]any{"payloads": payloads})
	assert.Equal(t, 401, s.do(t, "POST", "/codec/decode", "bf_sk_not_a_key", string(body)).Status)
	dec := s.do(t, "POST", "/codec/decode", s.Key, string(body), "Origin", s.Config.TemporalUIOrigin)
	require.Equal(t, 200, dec.Status, string(dec.Raw))
	decoded := string(dec.Raw)
	assert.Contains(t, decoded, "anNvbi9wbGFpbg==", "decoded payloads are json/plain")
	var all strings.Builder
	for _, p := range dec.Body["payloads"].([]any) {
		data, _ := p.(map[string]any)["data"].(string)
		raw, _ := decodeB64(data)
		all.Write(raw)
	}
	assert.Contains(t, all.String(), id, "decoded payloads carry the invoice ID")
	// The payer name the client typed travels (encrypted) with the pay Update; care details never do.
	for _, secret := range []string{"Individual therapy", "F41.1", "90837", "ada@example.com"} {
		assert.NotContains(t, all.String(), secret)
	}
	pre := s.do(t, "OPTIONS", "/codec/decode", "", nil, "Origin", s.Config.TemporalUIOrigin, "Access-Control-Request-Method", "POST")
	assert.Equal(t, 204, pre.Status)
}
