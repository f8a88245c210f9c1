package worker

import (
	"reflect"
	"runtime"
	"strings"
	"testing"

	"go.temporal.io/sdk/testsuite"

	"github.com/billflow/billflow/contract"
)

// Clients start workflows by contract type name; the worker must run a
// function under each of those names, and each name must be its function's
// own (the type recorded histories carry), so renaming a workflow function
// or a contract name fails here instead of silently breaking starts.
func TestWorkflowsMatchContract(t *testing.T) {
	if len(Workflows) != len(contract.WorkflowTypes) {
		t.Fatalf("worker runs %d workflows, the contract names %d", len(Workflows), len(contract.WorkflowTypes))
	}
	for _, name := range contract.WorkflowTypes {
		fn, ok := Workflows[name]
		if !ok {
			t.Errorf("contract workflow type %q has no workflow in the worker", name)
			continue
		}
		full := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
		if got := full[strings.LastIndex(full, ".")+1:]; got != name {
			t.Errorf("contract type %q is registered with function %s", name, full)
		}
	}
}

// A workflow registered through Register starts by its contract name alone.
func TestRegisteredWorkflowStartsByContractName(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	Register(env, nil)
	env.ExecuteWorkflow(contract.DocumentWorkflowType, &contract.DocumentInput{Kind: "unknown"})
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not run")
	}
	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "unknown document kind") {
		t.Fatalf("DocumentWorkflow did not run by its contract name: %v", err)
	}
}
