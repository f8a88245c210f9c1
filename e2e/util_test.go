package e2e

import (
	"encoding/base64"
	"encoding/json"
	"regexp"
	"testing"
)

var payloadRe = regexp.MustCompile(`\{\s*"metadata":\s*\{[^{}]*\},\s*"data":\s*"[^"]*"\s*\}`)

// extractPayloads pulls the payload objects out of protojson-formatted history.
func extractPayloads(t *testing.T, history string) []map[string]any {
	var out []map[string]any
	for _, m := range payloadRe.FindAllString(history, -1) {
		var p map[string]any
		if json.Unmarshal([]byte(m), &p) == nil {
			out = append(out, p)
		}
	}
	return out
}

func decodeB64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
