// Package tenancy keeps each practice apart in Temporal: its own namespace
// (so a practitioner sees only their practice in the Temporal UI, enforced by
// Temporal's namespace boundary) and its own payload data keys (so the codec
// endpoint decodes only the caller's practice's payloads).
//
// A data key is 32 random bytes, stored in Postgres only wrapped
// (AES-256-GCM) by the master key TEMPORAL_ENCRYPTION_KEY, the wrapping bound
// to the practice and key ID. Both levels rotate: `billflow practice
// rotate-key` gives a practice a new current data key (old payloads still
// decode), and a new master key with the old ones in
// TEMPORAL_ENCRYPTION_OLD_KEYS plus `billflow keys rewrap` re-wraps every data
// key, after which the old master key can be dropped.
//
// Practices made before namespaces (no temporal_namespace) keep running in
// the shared namespace (TEMPORAL_NAMESPACE) under the master key.
package tenancy

import (
	"strings"
	"time"
)

// NamespacePrefix starts every practice namespace's name.
const NamespacePrefix = "billflow-prac-"

// Retention is how long a practice namespace keeps closed workflows.
const Retention = 30 * 24 * time.Hour

// Namespace is a practice's namespace: "billflow-prac-<id without prac_>".
func Namespace(practiceID string) string {
	return NamespacePrefix + strings.TrimPrefix(practiceID, "prac_")
}

// PracticeOfNamespace inverts Namespace; ok is false for any other
// namespace (the shared one).
func PracticeOfNamespace(namespace string) (practiceID string, ok bool) {
	rest, ok := strings.CutPrefix(namespace, NamespacePrefix)
	if !ok || rest == "" {
		return "", false
	}
	return "prac_" + rest, true
}
