package devtemporal

import (
	"github.com/billflow/billflow/contract"

	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

// SearchAttributes are the custom search attributes billflow's workflows upsert
// so a practitioner can filter invoices in the Temporal UI. The dev server
// registers them on start; a real cluster gets them from
// RegisterSearchAttributes (the `billflow temporal setup` admin command).
var SearchAttributes = map[string]enumspb.IndexedValueType{
	contract.InvoiceStatusKey.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	contract.PracticeIDKey.GetName():    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	contract.ClientIDKey.GetName():      enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	contract.AmountDueKey.GetName():     enumspb.INDEXED_VALUE_TYPE_INT,
	contract.DueDateKey.GetName():       enumspb.INDEXED_VALUE_TYPE_DATETIME,
}

// RegisterSearchAttributes adds the missing SearchAttributes to namespace
// through the operator service. It is idempotent, so it can run on every deploy:
// attributes that already exist with the right type are left alone, and one
// that exists with another type is an error, because silently keeping it would
// make billflow's upserts fail at run time.
//
// On a cluster with SQL visibility a newly added attribute becomes usable once
// the frontends refresh their namespace cache (a few seconds).
func RegisterSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	ops := c.OperatorService()
	existing, err := ops.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes of namespace %s: %w", namespace, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, name := range slices.Sorted(maps.Keys(SearchAttributes)) {
		want := SearchAttributes[name]
		have, ok := existing.GetCustomAttributes()[name]
		switch {
		case !ok:
			missing[name] = want
		case have != want:
			return fmt.Errorf("search attribute %s in namespace %s has type %s, billflow needs %s", name, namespace, have, want)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = ops.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace:        namespace,
		SearchAttributes: missing,
	})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("add search attributes %v to namespace %s: %w", slices.Sorted(maps.Keys(missing)), namespace, err)
	}
	return nil
}
