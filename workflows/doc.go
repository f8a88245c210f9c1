// Package workflows holds billflow's deterministic workflow code. Its
// contract with the outside (task queues, workflow IDs and type names,
// Update/Signal/Query names, payloads, statuses, error types, search
// attributes) lives in package contract. It does no I/O and never reads the
// clock except through workflow.Now.
package workflows
