package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/billflow/billflow/contract"
)

// saveHistories writes every invoice workflow's history (as stored:
// payloads stay encrypted) to dir/histories, for a person to read why a run
// failed or a payment was slow, with the Temporal UI's import or by eye.
func (w *world) saveHistories(ctx context.Context, tc client.Client, outs []*outcome) error {
	dir := filepath.Join(w.dir, "histories")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, o := range outs {
		for _, id := range o.invoices {
			wid := contract.InvoiceWorkflowID(id)
			h := &historypb.History{}
			it := tc.GetWorkflowHistory(ctx, wid, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for it.HasNext() {
				ev, err := it.Next()
				if err != nil {
					return fmt.Errorf("history of %s: %w", wid, err)
				}
				h.Events = append(h.Events, ev)
			}
			raw, err := protojson.MarshalOptions{Multiline: true}.Marshal(h)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, wid+".json"), raw, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}
