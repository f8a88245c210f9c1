package stripesandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
)

// event is one Stripe event and its delivery state.
type event struct {
	ID        string
	Type      string
	ObjectID  string
	payload   []byte
	delivered bool
	attempts  int
}

// emit records an event and queues it for delivery; s.mu is held.
func (s *Sandbox) emit(typ, objectID string, obj map[string]any) {
	e := &event{ID: newID("evt_"), Type: typ, ObjectID: objectID}
	payload, err := json.Marshal(map[string]any{
		"id": e.ID, "object": "event", "type": typ, "api_version": stripe.APIVersion, "created": now(),
		"livemode": false, "pending_webhooks": 1, "data": map[string]any{"object": obj},
		"request": map[string]any{"id": nil, "idempotency_key": nil},
	})
	if err != nil {
		s.log.Error("encode event", "type", typ, "err", err)
		return
	}
	e.payload = payload
	s.events = append(s.events, e)
	if s.opts.WebhookURL == "" || s.dropWebhooks {
		return
	}
	s.queue = append(s.queue, e)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// DropWebhooks makes the events emitted while on never be sent (they are
// still listed by Events, undelivered): a webhook endpoint that was never
// subscribed, or a delivery Stripe gave up on.
func (s *Sandbox) DropWebhooks(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropWebhooks = on
}

// deliverLoop posts queued events in order, one at a time, retrying each
// with backoff while the receiver is down, as Stripe does (more briefly).
func (s *Sandbox) deliverLoop() {
	defer s.workers.Done()
	for {
		s.mu.Lock()
		var e *event
		if len(s.queue) > 0 {
			e = s.queue[0]
			s.queue = s.queue[1:]
		}
		s.mu.Unlock()
		if e == nil {
			select {
			case <-s.wake:
				continue
			case <-s.done:
				return
			}
		}
		delay := s.opts.WebhookRetryDelay
		for attempt := 1; attempt <= s.opts.WebhookAttempts; attempt++ {
			err := s.post(e)
			s.mu.Lock()
			e.attempts = attempt
			e.delivered = err == nil
			s.mu.Unlock()
			if err == nil {
				break
			}
			s.log.Warn("webhook delivery failed", "event", e.ID, "type", e.Type, "attempt", attempt, "err", err)
			if attempt == s.opts.WebhookAttempts {
				break
			}
			select {
			case <-time.After(delay):
			case <-s.done:
				return
			}
			if delay *= 2; delay > 5*time.Second {
				delay = 5 * time.Second
			}
		}
	}
}

// post signs the event now (Stripe signs each attempt) and sends it.
func (s *Sandbox) post(e *event) error {
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: e.payload, Secret: s.opts.WebhookSecret})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opts.WebhookURL, bytes.NewReader(e.payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks; billflow sandbox)")
	req.Header.Set("Stripe-Signature", signed.Header)
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("receiver answered %s", resp.Status)
	}
	return nil
}
