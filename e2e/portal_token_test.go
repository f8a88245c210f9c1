package e2e

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/store"
)

func (s *stack) portalToken(t *testing.T, key, clientID string) string {
	r := s.do(t, "POST", "/v1/clients/"+clientID+"/portal-token", key, nil)
	require.Equal(t, 201, r.Status, string(r.Raw))
	assert.NotEmpty(t, r.str("expires_at"))
	return r.str("token")
}

func TestPortalTokenScopeAndCardRemoval(t *testing.T) {
	s := getStack(t)
	ctx := context.Background()
	p, key, err := s.Store.CreatePractice(ctx, store.NewPractice{Name: "Strict Cards Practice", Currency: "usd", Timezone: "UTC"})
	require.NoError(t, err)
	no := false
	_, err = s.Store.UpdatePracticeSettings(ctx, p.ID, store.PracticeSettings{AllowClientCardRemoval: &no})
	require.NoError(t, err)
	me, other := s.newClient(t, key), s.newClient(t, key)
	mine := s.newInvoice(t, key, me, 9000, nil).str("id")
	theirs := s.newInvoice(t, key, other, 9000, nil).str("id")
	tok := s.portalToken(t, key, me)

	assert.Equal(t, 200, s.do(t, "GET", "/v1/invoices/"+mine, tok, nil).Status)
	assert.Equal(t, 404, s.do(t, "GET", "/v1/invoices/"+theirs, tok, nil).Status, "another client's invoice")
	assert.Equal(t, 404, s.do(t, "GET", "/v1/clients/"+other+"/payment-methods", tok, nil).Status)
	assert.Equal(t, 404, s.do(t, "POST", "/v1/invoices/"+mine+"/refunds", tok, map[string]any{"amount": 100}).Status, "practice-only route")
	assert.Equal(t, 404, s.do(t, "POST", "/v1/invoices", tok, map[string]any{}).Status, "practice-only route")
	list := s.do(t, "GET", "/v1/invoices", tok, nil)
	require.Equal(t, 200, list.Status)
	assert.Len(t, list.Body["data"], 1, "a client lists only its own invoices")
	// Another practice's key sees nothing of this client either.
	assert.Equal(t, 404, s.do(t, "GET", "/v1/invoices/"+mine, s.Key, nil).Status)

	// The client pays its own invoice and saves the card.
	r := s.do(t, "POST", "/v1/invoices/"+mine+"/payments", tok, map[string]any{"amount": 9000, "payment_method": "pm_card_visa", "save_card": true})
	require.Equal(t, 200, r.Status, string(r.Raw))
	pms := s.do(t, "GET", "/v1/clients/"+me+"/payment-methods", tok, nil).Body["data"].([]any)
	require.Len(t, pms, 1)
	pm := pms[0].(map[string]any)["id"].(string)
	// This practice does not let clients remove cards; the practice can.
	del := s.do(t, "DELETE", "/v1/clients/"+me+"/payment-methods/"+pm, tok, nil)
	assert.Equal(t, 403, del.Status)
	assert.Equal(t, "card_removal_not_allowed", del.errCode())
	assert.Equal(t, 200, s.do(t, "DELETE", "/v1/clients/"+me+"/payment-methods/"+pm, key, nil).Status)

	// Revoked and forged tokens are refused.
	_, err = s.Store.RevokePortalTokens(ctx, me)
	require.NoError(t, err)
	assert.Equal(t, 401, s.do(t, "GET", "/v1/invoices/"+mine, tok, nil).Status)
	assert.Equal(t, 401, s.do(t, "GET", "/v1/invoices/"+mine, "bf_pt_forged", nil).Status)
}

func TestClientMayRemoveCardWhenAllowed(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	tok := s.portalToken(t, s.Key, cl)
	add := s.do(t, "POST", "/v1/clients/"+cl+"/payment-methods", tok, map[string]any{"payment_method": "pm_card_amex", "cardholder_name": "Ada L", "billing_zip": "02139"})
	require.Equal(t, 201, add.Status, string(add.Raw))
	assert.Equal(t, "amex", add.str("brand"))
	declined := s.do(t, "POST", "/v1/clients/"+cl+"/payment-methods", tok, map[string]any{"payment_method": "pm_card_chargeDeclined"})
	assert.Equal(t, 402, declined.Status, "a card that declines cannot be saved")
	assert.Equal(t, 200, s.do(t, "DELETE", "/v1/clients/"+cl+"/payment-methods/"+add.str("id"), tok, nil).Status)
}
