// Package temporalclient dials Temporal the same way for the API, the worker
// and the admin commands: namespace, logger, metrics and data converter.
package temporalclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Options are what every dialer supplies.
type Options struct {
	Address   string
	Namespace string
	Logger    *slog.Logger
	Metrics   client.MetricsHandler
	// DataConverter, when set, also encodes failures: their messages and
	// stack traces travel in encoded attributes it encrypts, because an
	// error's text can carry what the payloads are encrypted to protect.
	DataConverter converter.DataConverter
	// TLS, when set, dials the frontend over TLS; a client certificate in
	// it is presented for mTLS.
	TLS *tls.Config
	// APIKey, when set, is sent with every call as bearer credentials
	// (Temporal Cloud API keys). Without TLS it is refused unless the
	// address is loopback (a local proxy), where it goes in plaintext.
	APIKey string
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
	if o.DataConverter != nil {
		opts.FailureConverter = temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
			DataConverter: o.DataConverter, EncodeCommonAttributes: true})
	}
	opts.ConnectionOptions.TLS = o.TLS
	if o.APIKey != "" {
		if o.TLS == nil {
			if !IsLoopback(o.Address) {
				return nil, fmt.Errorf("dial temporal at %s: an API key needs TLS beyond loopback", o.Address)
			}
			// The SDK would otherwise turn TLS on by itself for a key.
			opts.ConnectionOptions.TLSDisabled = true
		}
		opts.Credentials = client.NewAPIKeyStaticCredentials(o.APIKey)
	}
	if IsLoopback(o.Address) {
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
		if time.Now().After(deadline) || ctx.Err() != nil || refused(err) {
			return nil, fmt.Errorf("dial temporal at %s: %w", o.Address, err)
		}
		select {
		case <-ctx.Done():
			// The last error says why (a TLS handshake, say), not ctx's.
			return nil, fmt.Errorf("dial temporal at %s: %w", o.Address, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// refused reports whether the frontend turned the credentials down: waiting
// does not change a wrong API key or certificate.
func refused(err error) bool {
	var denied *serviceerror.PermissionDenied
	return status.Code(err) == codes.Unauthenticated || errors.As(err, &denied)
}

// IsLoopback reports whether a host:port names this machine. Config uses it
// too: plaintext credentials are allowed to a loopback address only.
func IsLoopback(address string) bool {
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
