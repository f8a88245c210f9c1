package payments

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
)

// StripeConfig configures the Stripe gateway.
type StripeConfig struct {
	// SecretKey is STRIPE_SECRET_KEY.
	SecretKey string
	// APIBase is STRIPE_API_BASE; "" means Stripe's own https://api.stripe.com.
	// Point it at stripe-mock or internal/stripesandbox in tests and dev.
	APIBase string
	// HTTPClient overrides the client (and Timeout with it).
	HTTPClient *http.Client
	// Timeout bounds each request; default 30s. An expired request is a
	// transient error whose outcome is unknown: retry with the same key.
	Timeout time.Duration
	// MaxNetworkRetries is stripe-go's own retry count. It is 0 by default
	// because Temporal retries the activity with backoff.
	MaxNetworkRetries int64
}

// Stripe is the Gateway on stripe-go v76.
type Stripe struct {
	api *client.API
}

var _ Gateway = (*Stripe)(nil)

// NewStripe builds the gateway. It does no I/O.
func NewStripe(cfg StripeConfig) *Stripe {
	hc := cfg.HTTPClient
	if hc == nil {
		timeout := cfg.Timeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		// Keep connections for concurrent charges: the default keeps two
		// per host, so every third charge at once paid for a new
		// connection (a TLS handshake, at api.stripe.com).
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		hc = &http.Client{Timeout: timeout, Transport: tr}
	}
	bc := &stripe.BackendConfig{
		HTTPClient:        hc,
		MaxNetworkRetries: stripe.Int64(cfg.MaxNetworkRetries),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
	if cfg.APIBase != "" {
		bc.URL = stripe.String(strings.TrimRight(cfg.APIBase, "/"))
	}
	backends := &stripe.Backends{
		API:     stripe.GetBackendWithConfig(stripe.APIBackend, bc),
		Connect: stripe.GetBackendWithConfig(stripe.ConnectBackend, &stripe.BackendConfig{HTTPClient: hc, MaxNetworkRetries: stripe.Int64(cfg.MaxNetworkRetries), LeveledLogger: bc.LeveledLogger}),
		Uploads: stripe.GetBackendWithConfig(stripe.UploadsBackend, &stripe.BackendConfig{HTTPClient: hc, MaxNetworkRetries: stripe.Int64(cfg.MaxNetworkRetries), LeveledLogger: bc.LeveledLogger}),
	}
	return &Stripe{api: client.New(cfg.SecretKey, backends)}
}

// Backend exposes the configured stripe-go API backend, for contract tests
// that send raw requests.
func (s *Stripe) Backend() stripe.Backend { return s.api.PaymentIntents.B }

// CreateCustomer creates a Stripe Customer tagged with billflow's client and
// practice IDs.
func (s *Stripe) CreateCustomer(ctx context.Context, req CustomerRequest) (string, error) {
	p := &stripe.CustomerParams{}
	p.Context = ctx
	if req.Email != "" {
		p.Email = stripe.String(req.Email)
	}
	if req.Name != "" {
		p.Name = stripe.String(req.Name)
	}
	if req.ClientID != "" {
		p.AddMetadata("client_id", req.ClientID)
	}
	if req.PracticeID != "" {
		p.AddMetadata("practice_id", req.PracticeID)
	}
	setKey(&p.Params, req.IdempotencyKey)
	c, err := s.api.Customers.New(p)
	if err != nil {
		return "", mapError("create customer", err)
	}
	return c.ID, nil
}

// isBankTestID reports whether id is one of Stripe's us_bank_account test IDs.
func isBankTestID(id string) bool { return strings.HasPrefix(id, "pm_usBankAccount") }

// isTestID reports whether id is a Stripe test alias rather than a real
// PaymentMethod ID.
func isTestID(id string) bool {
	return strings.HasPrefix(id, "pm_card_") || isBankTestID(id)
}

// Charge creates and confirms a PaymentIntent in one call keyed by
// req.IdempotencyKey, so a retry replays Stripe's first answer.
//
// A card decline comes back from Stripe as HTTP 402 with the PaymentIntent in
// the error body; Charge turns it into a result with StatusFailed and the
// codes and a nil error, so the caller records the failure and tells the payer.
// Errors mean the request was invalid (KindInvalid) or its outcome is unknown
// (KindTransient: retry with the same key, or ask GetPaymentIntent).
func (s *Stripe) Charge(ctx context.Context, req ChargeRequest) (*ChargeResult, error) {
	if req.Amount <= 0 {
		return nil, &Error{Kind: KindInvalid, Code: "parameter_invalid_integer", Param: "amount", Message: "amount must be positive"}
	}
	if req.PaymentMethodID == "" {
		return nil, &Error{Kind: KindInvalid, Code: "parameter_missing", Param: "payment_method", Message: "a payment method is required"}
	}
	if req.SaveCard && req.CustomerID == "" {
		return nil, &Error{Kind: KindInvalid, Code: "parameter_missing", Param: "customer", Message: "saving a payment method needs a customer"}
	}
	methodType, err := s.methodType(ctx, req.PaymentMethodID)
	if err != nil {
		return nil, err
	}

	p := &stripe.PaymentIntentParams{
		Amount:        stripe.Int64(req.Amount),
		Currency:      stripe.String(strings.ToLower(req.Currency)),
		PaymentMethod: stripe.String(req.PaymentMethodID),
		Confirm:       stripe.Bool(true),
	}
	p.Context = ctx
	if req.CustomerID != "" {
		p.Customer = stripe.String(req.CustomerID)
	}
	if req.Description != "" {
		p.Description = stripe.String(req.Description)
	}
	for k, v := range req.Metadata {
		p.AddMetadata(k, v)
	}
	if req.OffSession {
		p.OffSession = stripe.Bool(true)
	} else if req.ReturnURL != "" {
		// return_url is only allowed on on-session confirmations.
		p.ReturnURL = stripe.String(req.ReturnURL)
	}
	if req.SaveCard {
		p.SetupFutureUsage = stripe.String(string(stripe.PaymentIntentSetupFutureUsageOffSession))
	}
	if methodType == MethodUSBankAccount {
		// ACH debits need the type listed explicitly and a mandate: the
		// payer authorised the debit on billflow's page (offline acceptance).
		p.PaymentMethodTypes = stripe.StringSlice([]string{MethodUSBankAccount})
		p.MandateData = &stripe.PaymentIntentMandateDataParams{
			CustomerAcceptance: &stripe.PaymentIntentMandateDataCustomerAcceptanceParams{
				Type: stripe.String(string(stripe.MandateCustomerAcceptanceTypeOffline)),
			},
		}
	} else {
		p.PaymentMethodTypes = stripe.StringSlice([]string{MethodCard})
	}
	p.AddExpand("payment_method")
	setKey(&p.Params, req.IdempotencyKey)

	pi, err := s.api.PaymentIntents.New(p)
	if err != nil {
		var se *stripe.Error
		if errors.As(err, &se) && se.Type == stripe.ErrorTypeCard {
			return declinedResult(req, methodType, se), nil
		}
		return nil, mapError("create payment intent", err)
	}
	res := chargeResult(pi)
	fillMethod(&res.Method, req, methodType)
	return res, nil
}

// methodType decides whether a PaymentMethod is a card or a bank account:
// test IDs by name, real IDs by asking Stripe (a read, safe to repeat).
func (s *Stripe) methodType(ctx context.Context, pmID string) (string, error) {
	if isBankTestID(pmID) {
		return MethodUSBankAccount, nil
	}
	if isTestID(pmID) {
		return MethodCard, nil
	}
	m, err := s.GetPaymentMethod(ctx, pmID)
	if err != nil {
		return "", err
	}
	if m.Type == MethodUSBankAccount {
		return MethodUSBankAccount, nil
	}
	return MethodCard, nil
}

// declinedResult builds the StatusFailed result from a card_error.
func declinedResult(req ChargeRequest, methodType string, se *stripe.Error) *ChargeResult {
	res := &ChargeResult{
		Status:         StatusFailed,
		Amount:         req.Amount,
		Currency:       strings.ToLower(req.Currency),
		FailureCode:    string(se.Code),
		DeclineCode:    string(se.DeclineCode),
		FailureMessage: se.Msg,
		ChargeID:       se.ChargeID,
		Metadata:       req.Metadata,
	}
	if se.PaymentIntent != nil {
		pi := chargeResult(se.PaymentIntent)
		res.PaymentIntentID = pi.PaymentIntentID
		res.Method = pi.Method
		if pi.ChargeID != "" && res.ChargeID == "" {
			res.ChargeID = pi.ChargeID
		}
		if pi.Amount != 0 {
			res.Amount = pi.Amount
		}
	}
	if res.Method.ID == "" && se.PaymentMethod != nil {
		res.Method = methodFrom(se.PaymentMethod)
	}
	if res.FailureCode == "" {
		res.FailureCode = string(stripe.ErrorCodeCardDeclined)
	}
	fillMethod(&res.Method, req, methodType)
	return res
}

// fillMethod completes what the PaymentIntent did not expand.
func fillMethod(m *Method, req ChargeRequest, methodType string) {
	if m.ID == "" {
		m.ID = req.PaymentMethodID
	}
	if m.Type == "" {
		m.Type = methodType
	}
	if m.CardholderName == "" {
		m.CardholderName = req.PayerName
	}
	if m.BillingZIP == "" {
		m.BillingZIP = req.BillingZIP
	}
}

// GetPaymentIntent reads a PaymentIntent: how an unknown outcome is resolved.
func (s *Stripe) GetPaymentIntent(ctx context.Context, id string) (*ChargeResult, error) {
	p := &stripe.PaymentIntentParams{}
	p.Context = ctx
	p.AddExpand("payment_method")
	pi, err := s.api.PaymentIntents.Get(id, p)
	if err != nil {
		return nil, mapError("get payment intent "+id, err)
	}
	return chargeResult(pi), nil
}

// CancelPaymentIntent cancels an unfinished PaymentIntent ("abandoned": a
// later payment replaced it). Stripe refuses to cancel one that succeeded or
// is processing (payment_intent_unexpected_state); then its current state is
// the answer. Canceling is idempotent at Stripe, so a retry is safe.
func (s *Stripe) CancelPaymentIntent(ctx context.Context, id string) (*ChargeResult, error) {
	p := &stripe.PaymentIntentCancelParams{CancellationReason: stripe.String(string(stripe.PaymentIntentCancellationReasonAbandoned))}
	p.Context = ctx
	p.AddExpand("payment_method")
	pi, err := s.api.PaymentIntents.Cancel(id, p)
	if err != nil {
		var se *stripe.Error
		if errors.As(err, &se) && se.Code == stripe.ErrorCodePaymentIntentUnexpectedState {
			return s.GetPaymentIntent(ctx, id)
		}
		return nil, mapError("cancel payment intent "+id, err)
	}
	return chargeResult(pi), nil
}

// FindPaymentIntent searches PaymentIntents by metadata payment_id and
// returns the newest, or nil, nil when there is none.
//
// Stripe's search is eventually consistent (an intent may take up to a
// minute to appear), so callers should first replay the charge with its
// idempotency key or read a PaymentIntent ID they kept; this is the fallback
// when neither is available.
func (s *Stripe) FindPaymentIntent(ctx context.Context, paymentID string) (*ChargeResult, error) {
	if paymentID == "" {
		return nil, &Error{Kind: KindInvalid, Code: "parameter_missing", Param: "payment_id", Message: "payment ID is required"}
	}
	p := &stripe.PaymentIntentSearchParams{}
	p.Context = ctx
	p.Query = fmt.Sprintf("metadata['payment_id']:'%s'", strings.ReplaceAll(paymentID, "'", `\'`))
	p.Limit = stripe.Int64(10)
	p.AddExpand("data.payment_method")
	it := s.api.PaymentIntents.Search(p)
	var best *stripe.PaymentIntent
	for it.Next() {
		pi := it.PaymentIntent()
		if pi.Metadata["payment_id"] != paymentID {
			continue
		}
		if best == nil || pi.Created > best.Created {
			best = pi
		}
	}
	if err := it.Err(); err != nil {
		return nil, mapError("search payment intents", err)
	}
	if best == nil {
		return nil, nil
	}
	return chargeResult(best), nil
}

// Refund refunds part (Amount > 0) or the rest (Amount == 0) of a
// PaymentIntent, keyed by req.IdempotencyKey.
func (s *Stripe) Refund(ctx context.Context, req RefundRequest) (*RefundResult, error) {
	if req.PaymentIntentID == "" {
		return nil, &Error{Kind: KindInvalid, Code: "parameter_missing", Param: "payment_intent", Message: "payment intent is required"}
	}
	if req.Amount < 0 {
		return nil, &Error{Kind: KindInvalid, Code: "parameter_invalid_integer", Param: "amount", Message: "refund amount must not be negative"}
	}
	p := &stripe.RefundParams{PaymentIntent: stripe.String(req.PaymentIntentID)}
	p.Context = ctx
	if req.Amount > 0 {
		p.Amount = stripe.Int64(req.Amount)
	}
	switch req.Reason {
	case "":
	case string(stripe.RefundReasonDuplicate), string(stripe.RefundReasonFraudulent), string(stripe.RefundReasonRequestedByCustomer):
		p.Reason = stripe.String(req.Reason)
	default:
		return nil, &Error{Kind: KindInvalid, Code: "parameter_invalid", Param: "reason", Message: fmt.Sprintf("refund reason %q is not one of duplicate, fraudulent, requested_by_customer", req.Reason)}
	}
	for k, v := range req.Metadata {
		p.AddMetadata(k, v)
	}
	setKey(&p.Params, req.IdempotencyKey)
	r, err := s.api.Refunds.New(p)
	if err != nil {
		return nil, mapError("refund "+req.PaymentIntentID, err)
	}
	return &RefundResult{RefundID: r.ID, Status: string(r.Status), Amount: r.Amount}, nil
}

// AttachPaymentMethod saves pmID on customerID. With a Stripe test ID Stripe
// (and the sandbox) attach a fresh pm_… copy; the returned Method.ID is the
// one to store.
func (s *Stripe) AttachPaymentMethod(ctx context.Context, pmID, customerID, idempotencyKey string) (*Method, error) {
	p := &stripe.PaymentMethodAttachParams{Customer: stripe.String(customerID)}
	p.Context = ctx
	setKey(&p.Params, idempotencyKey)
	pm, err := s.api.PaymentMethods.Attach(pmID, p)
	if err != nil {
		return nil, mapError("attach payment method", err)
	}
	m := methodFrom(pm)
	return &m, nil
}

// DetachPaymentMethod removes a saved method from its customer; Stripe will
// not let it be used again.
func (s *Stripe) DetachPaymentMethod(ctx context.Context, pmID string) error {
	p := &stripe.PaymentMethodDetachParams{}
	p.Context = ctx
	if _, err := s.api.PaymentMethods.Detach(pmID, p); err != nil {
		return mapError("detach payment method", err)
	}
	return nil
}

// GetPaymentMethod reads a method's display details.
func (s *Stripe) GetPaymentMethod(ctx context.Context, pmID string) (*Method, error) {
	p := &stripe.PaymentMethodParams{}
	p.Context = ctx
	pm, err := s.api.PaymentMethods.Get(pmID, p)
	if err != nil {
		return nil, mapError("get payment method", err)
	}
	m := methodFrom(pm)
	return &m, nil
}

func setKey(p *stripe.Params, key string) {
	if key != "" {
		p.SetIdempotencyKey(key)
	}
}

// chargeResult folds a PaymentIntent into billflow's four statuses.
func chargeResult(pi *stripe.PaymentIntent) *ChargeResult {
	res := &ChargeResult{
		PaymentIntentID: pi.ID,
		Amount:          pi.Amount,
		Currency:        string(pi.Currency),
		ClientSecret:    pi.ClientSecret,
		Metadata:        pi.Metadata,
	}
	if pi.PaymentMethod != nil {
		res.Method = methodFrom(pi.PaymentMethod)
	}
	if pi.LatestCharge != nil {
		res.ChargeID = pi.LatestCharge.ID
	}
	if e := pi.LastPaymentError; e != nil {
		res.FailureCode = string(e.Code)
		res.DeclineCode = string(e.DeclineCode)
		res.FailureMessage = e.Msg
	}
	switch pi.Status {
	case stripe.PaymentIntentStatusSucceeded:
		res.Status = StatusSucceeded
		res.FailureCode, res.DeclineCode, res.FailureMessage = "", "", ""
	case stripe.PaymentIntentStatusProcessing, stripe.PaymentIntentStatusRequiresCapture:
		res.Status = StatusProcessing
	case stripe.PaymentIntentStatusRequiresAction:
		res.Status = StatusRequiresAction
		if na := pi.NextAction; na != nil && na.RedirectToURL != nil {
			res.NextActionURL = na.RedirectToURL.URL
		}
	default:
		// requires_payment_method (declined or authentication failed),
		// requires_confirmation (never confirmed) and canceled: no money moved.
		res.Status = StatusFailed
		if res.FailureCode == "" {
			res.FailureCode = "payment_intent_" + string(pi.Status)
		}
	}
	return res
}

// methodFrom reduces a PaymentMethod to its display details.
func methodFrom(pm *stripe.PaymentMethod) Method {
	m := Method{ID: pm.ID, Type: string(pm.Type)}
	if c := pm.Card; c != nil {
		m.Brand = string(c.Brand)
		m.Last4 = c.Last4
		m.ExpMonth = int(c.ExpMonth)
		m.ExpYear = int(c.ExpYear)
	}
	if b := pm.USBankAccount; b != nil {
		m.BankName = b.BankName
		m.Last4 = b.Last4
	}
	if bd := pm.BillingDetails; bd != nil {
		m.CardholderName = bd.Name
		if bd.Address != nil {
			m.BillingZIP = bd.Address.PostalCode
		}
	}
	return m
}

// mapError turns a stripe-go or network error into an *Error of the right
// kind.
func mapError(op string, err error) error {
	var se *stripe.Error
	if !errors.As(err, &se) {
		// Network errors, timeouts, undecodable bodies: the request may or
		// may not have happened, so it is retried with the same key.
		return &Error{Kind: KindTransient, Message: op + ": " + err.Error(), Err: err}
	}
	e := &Error{
		Code:        string(se.Code),
		DeclineCode: string(se.DeclineCode),
		Message:     se.Msg,
		Param:       se.Param,
		HTTPStatus:  se.HTTPStatusCode,
		Err:         err,
	}
	shouldRetry := ""
	if se.LastResponse != nil {
		shouldRetry = se.LastResponse.Header.Get("Stripe-Should-Retry")
	}
	switch {
	case shouldRetry == "true":
		e.Kind = KindTransient
	case shouldRetry == "false":
		e.Kind = kindOfType(se)
		if e.Kind == KindTransient {
			e.Kind = KindInvalid
		}
	default:
		e.Kind = kindOfType(se)
	}
	return e
}

func kindOfType(se *stripe.Error) ErrorKind {
	switch {
	case se.Type == stripe.ErrorTypeCard:
		return KindDeclined
	case se.HTTPStatusCode == http.StatusConflict, se.HTTPStatusCode == http.StatusTooManyRequests,
		se.HTTPStatusCode >= 500, se.Type == stripe.ErrorTypeAPI,
		se.Code == stripe.ErrorCodeIdempotencyKeyInUse, se.Code == stripe.ErrorCodeLockTimeout:
		return KindTransient
	default:
		return KindInvalid
	}
}
