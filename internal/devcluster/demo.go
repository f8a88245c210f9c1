package devcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/billflow/billflow/store"
)

// SeedDemo returns the demo practice that an earlier run wrote to infoPath
// (a dev.json or cluster.json with "api_key"), when its key still works, or
// creates one: a stack restarted on its data keeps its API key.
func SeedDemo(ctx context.Context, st *store.Store, infoPath string) (practiceID, apiKey string, err error) {
	var prev struct {
		APIKey string `json:"api_key"`
	}
	if raw, err := os.ReadFile(infoPath); err == nil && json.Unmarshal(raw, &prev) == nil && prev.APIKey != "" {
		if id, err := st.PracticeIDForAPIKey(ctx, prev.APIKey); err == nil {
			return id, prev.APIKey, nil
		}
	}
	p, key, err := st.CreatePractice(ctx, store.NewPractice{Name: "Demo Wellness Practice", Currency: "usd",
		Timezone: "America/New_York", Email: "billing@demo-practice.localhost"})
	if err != nil {
		return "", "", fmt.Errorf("seed demo practice: %w", err)
	}
	return p.ID, key, nil
}
