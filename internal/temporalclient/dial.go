// Package temporalclient dials Temporal the same way for the API, the worker
// and the admin commands: namespace, logger, metrics and data converter.
package temporalclient

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
)

// Options are what every dialer supplies.
type Options struct {
	Address       string
	Namespace     string
	Logger        *slog.Logger
	Metrics       client.MetricsHandler
	DataConverter converter.DataConverter
}

// Dial connects and checks the server answers, retrying briefly so a process
// started beside its server does not fail on the first try.
func Dial(ctx context.Context, o Options) (client.Client, error) {
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	opts := client.Options{
		HostPort:       o.Address,
		Namespace:      o.Namespace,
		Logger:         log.NewStructuredLogger(logger.With("component", "temporal-sdk")),
		MetricsHandler: o.Metrics,
		DataConverter:  o.DataConverter,
	}
	if isLoopback(o.Address) {
		// The SDK gzips every request by default. Over loopback there is no
		// bandwidth to save, and both ends paid for it in CPU: about 4% of
		// the dev stack's under payment load.
		opts.ConnectionOptions.GrpcCompression = &client.GrpcCompressionNone{}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := client.DialContext(ctx, opts)
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("dial temporal at %s: %w", o.Address, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// isLoopback reports whether a host:port names this machine.
func isLoopback(address string) bool {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
