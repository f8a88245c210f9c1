package payments

import (
	"context"
	"errors"
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

func setKey(p *stripe.Params, key string) {
	if key != "" {
		p.SetIdempotencyKey(key)
	}
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
