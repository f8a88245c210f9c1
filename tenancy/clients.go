package tenancy

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/codec"
	"github.com/billflow/billflow/store"
)

// Clients hands out the Temporal client of each namespace over one
// connection: the shared namespace's (Base, master key) and each practice's
// (its namespace, its data keys, strict: payloads under any other key are
// refused, never acted on; summaries encrypted too).
type Clients struct {
	Base    client.Client
	Keyring *codec.Keyring // nil: payloads are not encrypted
	Store   *store.Store
	// Template carries the options every derived client shares (logger,
	// metrics); namespace and converters are set per practice.
	Template client.Options

	mu     sync.Mutex
	byNS   map[string]client.Client
	nsOf   map[string]string    // practice ID → namespace ("" none)
	noneAt map[string]time.Time // when a practice was seen without one
}

// PracticeNamespaceTTL is how long "this practice has no namespace" is
// believed; a namespace, once set, never changes.
const PracticeNamespaceTTL = 10 * time.Second

// ForNamespace is the client of a namespace: a practice's, or Base for any other.
func (c *Clients) ForNamespace(namespace string) (client.Client, error) {
	practiceID, ok := PracticeOfNamespace(namespace)
	if !ok {
		return c.Base, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if tc := c.byNS[namespace]; tc != nil {
		return tc, nil
	}
	o := c.Template
	o.Namespace = namespace
	if c.Keyring != nil {
		o.DataConverter = codec.PracticeDataConverter(c.Keyring.ForPractice(practiceID))
		o.FailureConverter = temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
			DataConverter: o.DataConverter, EncodeCommonAttributes: true})
	}
	tc, err := client.NewClientFromExisting(c.Base, o)
	if err != nil {
		return nil, fmt.Errorf("temporal client of namespace %s: %w", namespace, err)
	}
	if c.byNS == nil {
		c.byNS = map[string]client.Client{}
	}
	c.byNS[namespace] = tc
	return tc, nil
}

// PracticeNamespace is a practice's namespace, "" for one without.
func (c *Clients) PracticeNamespace(ctx context.Context, practiceID string) (string, error) {
	c.mu.Lock()
	ns, known := c.nsOf[practiceID]
	if known && ns == "" && time.Since(c.noneAt[practiceID]) > PracticeNamespaceTTL {
		known = false
	}
	c.mu.Unlock()
	if known {
		return ns, nil
	}
	p, err := c.Store.GetPractice(ctx, practiceID)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nsOf == nil {
		c.nsOf, c.noneAt = map[string]string{}, map[string]time.Time{}
	}
	c.nsOf[practiceID] = p.TemporalNamespace
	if p.TemporalNamespace == "" {
		c.noneAt[practiceID] = time.Now()
	}
	return p.TemporalNamespace, nil
}

// CodecFor is the payload codec the codec endpoint decodes a practice's
// payloads with: its data keys, or the master key for a practice without a
// namespace. nil when payloads are not encrypted.
func (c *Clients) CodecFor(ctx context.Context, practiceID string) (converter.PayloadCodec, error) {
	if c.Keyring == nil {
		return nil, nil
	}
	ns, err := c.PracticeNamespace(ctx, practiceID)
	if err != nil {
		return nil, err
	}
	if ns == "" {
		return c.Keyring.ForPractice(""), nil
	}
	return c.Keyring.ForPractice(practiceID), nil
}

// Close closes the derived clients (Base is the caller's).
func (c *Clients) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ns, tc := range c.byNS {
		tc.Close()
		delete(c.byNS, ns)
	}
}
