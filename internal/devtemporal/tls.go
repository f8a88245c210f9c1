package devtemporal

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"go.temporal.io/server/common/rpc/encryption"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// TLSOptions serve the frontend (gRPC and its HTTP API) over TLS, so tests
// can dial it the way billflow dials a secured cluster.
type TLSOptions struct {
	// Certificate is the frontend's server certificate.
	Certificate tls.Certificate
	// RootCAs verifies Certificate for the server's own clients (its
	// system worker and Start's readiness check).
	RootCAs *x509.CertPool
	// ClientCAs, when set, makes every client present a certificate signed
	// by one of them (mTLS); without, client certificates are not required.
	ClientCAs *x509.CertPool
}

// frontendSecurity is what Start derives from Options.TLS and Options.APIKey.
type frontendSecurity struct {
	provider *encryption.FixedTLSConfigProvider
	// client is the TLS of the server's own clients. They present a
	// certificate from internalCA, made up per server, which passes the
	// ClientCAs check and exempts them from the API key: the system worker
	// has no way to send one.
	client     *tls.Config
	internalCA *x509.Certificate
}

func newFrontendSecurity(opts Options) (*frontendSecurity, error) {
	if opts.TLS == nil {
		if opts.APIKey != "" {
			return nil, errors.New("devtemporal: APIKey needs TLS")
		}
		return nil, nil
	}
	if opts.UIPort != 0 {
		return nil, errors.New("devtemporal: the UI is not supported with TLS")
	}
	ca, caKey, err := newInternalCA()
	if err != nil {
		return nil, err
	}
	systemCert, err := newSystemCert(ca, caKey)
	if err != nil {
		return nil, err
	}
	clientCAs := x509.NewCertPool()
	clientAuth := tls.VerifyClientCertIfGiven
	if opts.TLS.ClientCAs != nil {
		clientCAs = opts.TLS.ClientCAs.Clone()
		clientAuth = tls.RequireAndVerifyClientCert
	}
	clientCAs.AddCert(ca)
	server := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{opts.TLS.Certificate},
		ClientAuth:   clientAuth,
		ClientCAs:    clientCAs,
	}
	client := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		RootCAs:      opts.TLS.RootCAs,
		Certificates: []tls.Certificate{systemCert},
	}
	return &frontendSecurity{
		provider:   &encryption.FixedTLSConfigProvider{FrontendServerConfig: server, FrontendClientConfig: client},
		client:     client,
		internalCA: ca,
	}, nil
}

func newInternalCA() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("devtemporal: internal CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "devtemporal internal CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("devtemporal: internal CA: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("devtemporal: internal CA: %w", err)
	}
	return ca, key, nil
}

func newSystemCert(ca *x509.Certificate, caKey *ecdsa.PrivateKey) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("devtemporal: system client key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "devtemporal system"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("devtemporal: system client certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// apiKeyInterceptor answers Unauthenticated to a call without
// "authorization: Bearer <key>", as a namespace with API keys does. Health
// checks carry no data and pass; so do the server's own clients.
func (fs *frontendSecurity) apiKeyInterceptor(key string) grpc.UnaryServerInterceptor {
	want := []byte("Bearer " + key)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if strings.HasPrefix(info.FullMethod, "/grpc.health.v1.Health/") || fs.internalCaller(ctx) {
			return handler(ctx, req)
		}
		md, _ := metadata.FromIncomingContext(ctx)
		for _, got := range md.Get("authorization") {
			if subtle.ConstantTimeCompare([]byte(got), want) == 1 {
				return handler(ctx, req)
			}
		}
		return nil, status.Error(codes.Unauthenticated, "a valid API key is required")
	}
}

// internalCaller reports whether the call's TLS peer presented a certificate
// that verified up to the server's internal CA.
func (fs *frontendSecurity) internalCaller(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return false
	}
	for _, chain := range info.State.VerifiedChains {
		if len(chain) > 0 && chain[len(chain)-1].Equal(fs.internalCA) {
			return true
		}
	}
	return false
}
