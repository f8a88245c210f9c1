// Package devkeys holds the dev stack's fixed, non-secret development keys so
// the dev stack and the tools that talk to it agree. Never used in production.
package devkeys

// EncryptionKeyHex is the dev stack's TEMPORAL_ENCRYPTION_KEY.
const EncryptionKeyHex = "b111f10ad0000000000000000000000000000000000000000000000000000de5"

// WebhookSecret is the dev stack's STRIPE_WEBHOOK_SECRET.
const WebhookSecret = "whsec_billflow_dev_sandbox"
