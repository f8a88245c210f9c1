package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/billflow/billflow/contract"
)

// SQL in store/ is the one place outside contract that spells statuses,
// inside query text: Postgres derives an invoice's status (RefreshInvoice's
// CASE) and filters by status, and a partial index (invoices_open_due,
// payments_awaiting_action, payment_attempts' unsettled index) serves a
// query only when the planner can prove the query's predicate implies the
// index's, which a $n parameter cannot in a generic (prepared) plan. The
// migrations' CHECK constraints spell the same values. So, rather than
// parameters, each status a query spells must be one the
// contract (or the store's own attempt and email states) defines, and the
// invoices table must accept exactly the contract's invoice statuses.

var (
	sqlStatusEq   = regexp.MustCompile(`(?i)status\s*(?:=|<>|!=)\s*'(\w+)'`)
	sqlStatusIn   = regexp.MustCompile(`(?i)status\s+(?:NOT\s+)?IN\s*\(([^)]*)\)`)
	sqlThen       = regexp.MustCompile(`(?i)THEN\s+'(\w+)'`)
	sqlElse       = regexp.MustCompile(`(?i)ELSE\s+'(\w+)'\s+END`)
	sqlQuoted     = regexp.MustCompile(`'(\w+)'`)
	invoicesCheck = regexp.MustCompile(`(?s)CREATE TABLE invoices \(.*?status\s+text NOT NULL CHECK \(status IN \(([^)]*)\)\)`)
)

// storeStates are statuses the store keeps that are not the contract's:
// payment attempts before an answer, emails, and the processor's pending.
var storeStates = map[string]bool{"new": true, "charging": true, "sending": true, "sent": true, "rejected": true, "pending": true}

// sqlStatuses lists the statuses a SQL text spells.
func sqlStatuses(sql string) []string {
	var out []string
	for _, m := range sqlStatusEq.FindAllStringSubmatch(sql, -1) {
		out = append(out, m[1])
	}
	for _, m := range sqlStatusIn.FindAllStringSubmatch(sql, -1) {
		for _, q := range sqlQuoted.FindAllStringSubmatch(m[1], -1) {
			out = append(out, q[1])
		}
	}
	if strings.Contains(sql, "status = CASE") || strings.Contains(sql, "status=CASE") {
		for _, re := range []*regexp.Regexp{sqlThen, sqlElse} {
			for _, m := range re.FindAllStringSubmatch(sql, -1) {
				out = append(out, m[1])
			}
		}
	}
	return out
}

func TestStoreSQLSpellsOnlyKnownStatuses(t *testing.T) {
	values := statusValues()
	files, err := filepath.Glob("../store/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("store sources: %v", err)
	}
	fset := token.NewFileSet()
	found := 0
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			sql, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			for _, s := range sqlStatuses(sql) {
				found++
				if !values[s] && !storeStates[s] {
					t.Errorf("%s: SQL spells status %q, which contract does not define", fset.Position(lit.Pos()), s)
				}
			}
			return true
		})
	}
	if found < 20 {
		t.Fatalf("found only %d statuses in store's SQL: the patterns look wrong", found)
	}
}

func TestInvoicesTableAcceptsTheContractStatuses(t *testing.T) {
	b, err := os.ReadFile("../store/migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	m := invoicesCheck.FindSubmatch(b)
	if m == nil {
		t.Fatal("invoices status CHECK not found")
	}
	var db []string
	for _, q := range sqlQuoted.FindAllStringSubmatch(string(m[1]), -1) {
		db = append(db, q[1])
	}
	want := []string{string(contract.InvoiceDraft)}
	for _, s := range contract.InvoiceStatuses {
		want = append(want, string(s))
	}
	slices.Sort(db)
	slices.Sort(want)
	if !slices.Equal(db, want) {
		t.Fatalf("invoices accept %v, contract defines %v", db, want)
	}
}

func TestSQLStatusesCheck(t *testing.T) {
	got := sqlStatuses(`UPDATE invoices SET status = CASE WHEN i.status = 'void' THEN 'void' WHEN x THEN 'paidd' ELSE 'open' END
 WHERE status IN ('open','partially_paid') AND r.status <> 'failed'`)
	want := []string{"void", "failed", "open", "partially_paid", "void", "paidd", "open"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
