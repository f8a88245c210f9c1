package devcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/app"
	"github.com/billflow/billflow/config"
	"github.com/billflow/billflow/store"
)

// Demo is the demo practice a dev stack or cluster seeds.
type Demo struct {
	PracticeID string
	APIKey     string
	// Namespace is the practice's own Temporal namespace (the shared one,
	// cfg.TemporalNamespace, for a practice an older run made before
	// namespaces).
	Namespace string
}

// SeedDemo returns the demo practice that an earlier run wrote to infoPath
// (a dev.json or cluster.json with "api_key"), when its key still works, or
// creates one the way `billflow practice create` does (app.CreatePractice:
// its own namespace and data key): a stack restarted on its data keeps its
// API key.
func SeedDemo(ctx context.Context, cfg *config.Config, st *store.Store, tc client.Client, infoPath string) (Demo, error) {
	var prev struct {
		APIKey string `json:"api_key"`
	}
	if raw, err := os.ReadFile(infoPath); err == nil && json.Unmarshal(raw, &prev) == nil && prev.APIKey != "" {
		if id, err := st.PracticeIDForAPIKey(ctx, prev.APIKey); err == nil {
			p, err := st.GetPractice(ctx, id)
			if err != nil {
				return Demo{}, err
			}
			return Demo{PracticeID: id, APIKey: prev.APIKey, Namespace: namespaceOf(cfg, p)}, nil
		}
	}
	p, key, err := app.CreatePractice(ctx, cfg, st, tc, store.NewPractice{Name: "Demo Wellness Practice", Currency: "usd",
		Timezone: "America/New_York", Email: "billing@demo-practice.localhost"})
	if err != nil {
		return Demo{}, fmt.Errorf("seed demo practice: %w", err)
	}
	return Demo{PracticeID: p.ID, APIKey: key, Namespace: namespaceOf(cfg, p)}, nil
}

func namespaceOf(cfg *config.Config, p *store.Practice) string {
	if p.TemporalNamespace != "" {
		return p.TemporalNamespace
	}
	return cfg.TemporalNamespace
}
