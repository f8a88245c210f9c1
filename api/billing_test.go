package api

import (
	"testing"
	"time"

	"github.com/billflow/billflow/store"
)

func TestHistoryRange(t *testing.T) {
	today := time.Date(2026, 5, 20, 0, 0, 0, 0, time.UTC)
	d := func(s string) time.Time { v, _ := time.Parse(time.DateOnly, s); return v }
	for _, tc := range []struct {
		from, to, wantFrom, wantTo, param string
	}{
		{"", "", "2026-02-19", "2026-05-20", ""},
		{"2026-05-01", "", "2026-05-01", "2026-05-20", ""},
		{"", "2026-01-31", "2025-11-02", "2026-01-31", ""},
		{"2023-05-20", "2026-05-20", "2023-05-20", "2026-05-20", ""}, // exactly three years
		{"2023-05-19", "2026-05-20", "", "", "from"},
		{"2026-05-21", "", "", "", "from"}, // after today
		{"2026-05-02", "2026-05-01", "", "", "from"},
		{"05/01/2026", "", "", "", "from"},
		{"", "2026-02-30", "", "", "to"},
		{"", "tomorrow", "", "", "to"},
	} {
		from, to, ferr := historyRange(tc.from, tc.to, today)
		if tc.param != "" {
			if ferr == nil || ferr.param != tc.param {
				t.Errorf("historyRange(%q, %q) = %v, want an error on %s", tc.from, tc.to, ferr, tc.param)
			}
			continue
		}
		if ferr != nil || !from.Equal(d(tc.wantFrom)) || !to.Equal(d(tc.wantTo)) {
			t.Errorf("historyRange(%q, %q) = %s, %s, %v; want %s, %s", tc.from, tc.to, from.Format(time.DateOnly),
				to.Format(time.DateOnly), ferr, tc.wantFrom, tc.wantTo)
		}
	}
}

func TestPortalStatusInWords(t *testing.T) {
	today := time.Date(2026, 5, 20, 0, 0, 0, 0, time.UTC)
	due := func(days int) time.Time { return today.AddDate(0, 0, days) }
	for _, tc := range []struct {
		inv  store.Invoice
		want string
	}{
		{store.Invoice{Status: store.StatusOpen, Total: 9000, AmountDue: 9000, DueDate: due(3)}, "Open"},
		{store.Invoice{Status: store.StatusOpen, Total: 9000, AmountDue: 9000, DueDate: due(0)}, "Open"},
		{store.Invoice{Status: store.StatusOpen, Total: 9000, AmountDue: 9000, DueDate: due(-1)}, "Overdue"},
		{store.Invoice{Status: store.StatusPartiallyPaid, Total: 9000, AmountPaid: 4000, AmountDue: 5000, DueDate: due(3)}, "Partially paid"},
		{store.Invoice{Status: store.StatusPartiallyPaid, Total: 9000, AmountPaid: 4000, AmountDue: 5000, DueDate: due(-3)}, "Overdue"},
		{store.Invoice{Status: store.StatusPaid, Total: 9000, AmountPaid: 9000, DueDate: due(-30)}, "Paid"},
		{store.Invoice{Status: store.StatusProcessing, Total: 9000, AmountProcessing: 9000, DueDate: due(3)}, "Processing"},
		{store.Invoice{Status: store.StatusPartiallyRefunded, Total: 9000, AmountPaid: 9000, AmountRefunded: 100}, "Partially refunded"},
		{store.Invoice{Status: store.StatusRefunded, Total: 9000, AmountPaid: 9000, AmountRefunded: 9000}, "Refunded"},
	} {
		if got, _ := portalStatus(&tc.inv, today); got != tc.want {
			t.Errorf("portalStatus(%+v) = %q, want %q", tc.inv, got, tc.want)
		}
	}
}
