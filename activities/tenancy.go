package activities

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/tenancy"
)

// scope is whose rows an activity of a Schedule's run sees: the practice
// whose namespace it runs in, or "" (the practices without a namespace of
// their own) in the shared namespace.
func (a *Activities) scope(ctx context.Context) string {
	practiceID, _ := tenancy.PracticeOfNamespace(activity.GetInfo(ctx).WorkflowNamespace)
	return practiceID
}

// temporal is the client of the namespace the activity runs in, so what it
// signals or starts stays in that namespace, under that practice's key.
func (a *Activities) temporal(ctx context.Context) (client.Client, error) {
	ns := activity.GetInfo(ctx).WorkflowNamespace
	if a.TemporalFor != nil {
		if _, ok := tenancy.PracticeOfNamespace(ns); ok {
			c, err := a.TemporalFor(ns)
			if err != nil {
				return nil, fmt.Errorf("temporal client of namespace %s: %w", ns, err)
			}
			return c, nil
		}
	}
	if a.Temporal == nil {
		return nil, fmt.Errorf("the activities have no Temporal client")
	}
	return a.Temporal, nil
}
