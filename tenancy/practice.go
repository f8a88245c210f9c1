package tenancy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/billflow/billflow/codec"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/store"
)

// SearchAttributes are billflow's custom search attributes, registered in
// the shared namespace and in every practice's.
var SearchAttributes = map[string]enumspb.IndexedValueType{
	contract.InvoiceStatusKey.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	contract.PracticeIDKey.GetName():    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	contract.ClientIDKey.GetName():      enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	contract.AmountDueKey.GetName():     enumspb.INDEXED_VALUE_TYPE_INT,
	contract.DueDateKey.GetName():       enumspb.INDEXED_VALUE_TYPE_DATETIME,
}

// CreatePractice makes a practice the way `billflow practice create` does
// (the dev stack, make cluster and the fault run call it too): the row,
// with its namespace's name and its first data key, in one transaction, then
// the namespace registered with billflow's search attributes. The namespace
// is on the row before it is registered, so a registration cut short never
// lets the practice's workflows start in the shared namespace: they fail
// until `billflow temporal setup` finishes it. Without a master key the
// practice still gets its namespace, and its payloads are not encrypted (as
// everything then).
func CreatePractice(ctx context.Context, st *store.Store, tc client.Client, master *codec.Codec, in store.NewPractice) (*store.Practice, string, error) {
	in.ID = store.NewID("prac")
	in.TemporalNamespace = Namespace(in.ID)
	if master != nil {
		k, _, err := NewDataKey(master, in.ID)
		if err != nil {
			return nil, "", err
		}
		in.DataKey = &k
	}
	p, key, err := st.CreatePractice(ctx, in)
	if err != nil {
		return nil, "", err
	}
	if err := RegisterNamespace(ctx, tc, p.TemporalNamespace); err != nil {
		return p, key, fmt.Errorf("practice %s is made but its namespace %s is not ready (run `billflow temporal setup` to finish): %w",
			p.ID, p.TemporalNamespace, err)
	}
	return p, key, nil
}

// SetupNamespaces registers (or finishes registering) every practice's namespace.
func SetupNamespaces(ctx context.Context, st *store.Store, tc client.Client) error {
	list, err := st.PracticeNamespaces(ctx)
	if err != nil {
		return err
	}
	for _, p := range list {
		if err := RegisterNamespace(ctx, tc, p.Namespace); err != nil {
			return fmt.Errorf("practice %s: %w", p.PracticeID, err)
		}
	}
	return nil
}

// RegisterNamespace makes a namespace ready for billflow, idempotently: it
// exists (30-day retention), billflow's search attributes are registered in
// it, and the frontend accepts queries on them.
func RegisterNamespace(ctx context.Context, tc client.Client, namespace string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	// Described first: a namespace made elsewhere (Temporal Cloud makes
	// them in its control plane, not through the frontend) is only set up.
	_, err := tc.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace})
	var nf *serviceerror.NamespaceNotFound
	if errors.As(err, &nf) {
		_, err = tc.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace:                        namespace,
			Description:                      "billflow practice",
			WorkflowExecutionRetentionPeriod: durationpb.New(Retention),
		})
		var exists *serviceerror.NamespaceAlreadyExists
		if errors.As(err, &exists) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("register namespace %s: %w", namespace, err)
	}
	// A new namespace reaches the frontend's cache a moment later.
	if err := retry(ctx, func() error {
		return RegisterSearchAttributes(ctx, tc, namespace)
	}); err != nil {
		return err
	}
	return retry(ctx, func() error {
		_, err := tc.WorkflowService().ListWorkflowExecutions(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: namespace, PageSize: 1,
			Query: "PracticeId = 'x' AND InvoiceStatus = 'open' AND ClientId = 'x' AND AmountDue > 0 AND DueDate > '2000-01-01T00:00:00Z'"})
		if err != nil {
			return fmt.Errorf("namespace %s does not yet take queries on billflow's search attributes: %w", namespace, err)
		}
		return nil
	})
}

func retry(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// RegisterSearchAttributes adds whichever of billflow's attributes a
// namespace lacks; one there with another type is an error, because silently
// keeping it would make billflow's upserts fail at run time. It is
// idempotent, so it runs on every deploy; the dev server (internal/devtemporal)
// calls it on start too.
func RegisterSearchAttributes(ctx context.Context, tc client.Client, namespace string) error {
	ops := tc.OperatorService()
	have, err := ops.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes of %s: %w", namespace, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, name := range slices.Sorted(maps.Keys(SearchAttributes)) {
		want := SearchAttributes[name]
		got, ok := have.GetCustomAttributes()[name]
		switch {
		case !ok:
			missing[name] = want
		case got != want:
			return fmt.Errorf("search attribute %s in %s has type %s, billflow needs %s", name, namespace, got, want)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = ops.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("add search attributes to %s: %w", namespace, err)
	}
	return nil
}
