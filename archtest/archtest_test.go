// Package archtest checks billflow's package boundaries and its contract
// rules over the source: what the API and the shipped binary link, and that
// status values are spelled out only in package contract.
package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/billflow/billflow/contract"
)

const module = "github.com/billflow/billflow"

// pkg is one billflow package as `go list` sees it.
type pkg struct {
	ImportPath string
	Dir        string
	GoFiles    []string
}

// deps lists the billflow packages the pattern links (itself included).
func deps(t *testing.T, pattern string) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}\t{{.Dir}}\t{{join .GoFiles \",\"}}{{end}}", pattern).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pattern, err, out)
	}
	var list []pkg
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 || (f[0] != module && !strings.HasPrefix(f[0], module+"/")) {
			continue
		}
		p := pkg{ImportPath: f[0], Dir: f[1]}
		if f[2] != "" {
			p.GoFiles = strings.Split(f[2], ",")
		}
		list = append(list, p)
	}
	if len(list) == 0 {
		t.Fatalf("go list -deps %s: no billflow package", pattern)
	}
	return list
}

func TestContractImportsNoBillflowPackage(t *testing.T) {
	for _, p := range deps(t, module+"/contract") {
		if p.ImportPath != module+"/contract" {
			t.Errorf("contract links %s: it must import no billflow package", p.ImportPath)
		}
	}
}

// The API starts, updates and queries workflows through package contract
// by name; it never links the workflow, activity or worker code.
func TestAPIDoesNotLinkWorkflowCode(t *testing.T) {
	forbidden := []string{module + "/workflows", module + "/activities", module + "/worker"}
	for _, p := range deps(t, module+"/api") {
		for _, f := range forbidden {
			if p.ImportPath == f {
				t.Errorf("api links %s", f)
			}
		}
	}
}

// internal/ holds dev and test tools; what ships lives outside it (the
// payload codec included: it moved to codec/).
func TestShippedBinaryLinksNoInternalPackage(t *testing.T) {
	for _, p := range deps(t, module+"/cmd/billflow") {
		if strings.HasPrefix(p.ImportPath, module+"/internal/") {
			t.Errorf("cmd/billflow links %s: shipped code does not belong under internal/", p.ImportPath)
		}
	}
}

// statusValues are every status value the contract defines.
func statusValues() map[string]bool {
	set := map[string]bool{string(contract.InvoiceDraft): true}
	for _, s := range contract.InvoiceStatuses {
		set[string(s)] = true
	}
	for _, s := range []contract.PaymentStatus{contract.PaymentSucceeded, contract.PaymentProcessing,
		contract.PaymentRequiresAction, contract.PaymentFailed} {
		set[string(s)] = true
	}
	for _, s := range []contract.RefundStatus{contract.RefundSucceeded, contract.RefundPending, contract.RefundFailed,
		contract.RefundCanceled, contract.RefundRequiresAction} {
		set[string(s)] = true
	}
	return set
}

// statusName is whether an identifier names a status: Status, status,
// InvoiceStatus, wantStatus, ...
func statusName(name string) bool {
	return name == "status" || strings.HasSuffix(name, "Status")
}

// exprName is the last name of an identifier or selector.
func exprName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return e.Sel.Name
	case *ast.StarExpr:
		return exprName(e.X)
	case *ast.IndexExpr:
		return exprName(e.X)
	}
	return ""
}

// statusLiterals finds string literals with a status value used as a
// status: compared with a status (== != or a switch on one), assigned or set to a field
// named *Status, converted to a *Status type, or declared as one. SQL text,
// templates, log keys and other strings that merely contain such a word are
// not status literals.
func statusLiterals(file *ast.File, values map[string]bool) []*ast.BasicLit {
	var found []*ast.BasicLit
	check := func(e ast.Expr) {
		lit, ok := ast.Unparen(e).(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return
		}
		if v, err := strconv.Unquote(lit.Value); err == nil && values[v] {
			found = append(found, lit)
		}
	}
	ast.Inspect(file, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BinaryExpr:
			if n.Op == token.EQL || n.Op == token.NEQ {
				if statusName(exprName(n.X)) {
					check(n.Y)
				}
				if statusName(exprName(n.Y)) {
					check(n.X)
				}
			}
		case *ast.SwitchStmt:
			if n.Tag == nil || !statusName(exprName(n.Tag)) {
				return true
			}
			for _, s := range n.Body.List {
				for _, e := range s.(*ast.CaseClause).List {
					check(e)
				}
			}
		case *ast.KeyValueExpr:
			if statusName(exprName(n.Key)) {
				check(n.Value)
			}
		case *ast.AssignStmt:
			for i, l := range n.Lhs {
				if statusName(exprName(l)) && i < len(n.Rhs) {
					check(n.Rhs[i])
				}
			}
		case *ast.CallExpr:
			if statusName(exprName(n.Fun)) && len(n.Args) == 1 {
				check(n.Args[0])
			}
		case *ast.ValueSpec:
			if n.Type != nil && statusName(exprName(n.Type)) {
				for _, v := range n.Values {
					check(v)
				}
			}
			for i, name := range n.Names {
				if statusName(name.Name) && i < len(n.Values) {
					check(n.Values[i])
				}
			}
		}
		return true
	})
	return found
}

// Every status value is spelled out once, in package contract; shipped
// code (what cmd/billflow links, tests and internal/ aside) uses its typed
// constants, so a renamed or mistyped status cannot compile.
func TestNoStatusLiteralsOutsideContract(t *testing.T) {
	values := statusValues()
	fset := token.NewFileSet()
	checked := 0
	for _, p := range deps(t, module+"/cmd/billflow") {
		if p.ImportPath == module+"/contract" || strings.HasPrefix(p.ImportPath, module+"/internal/") {
			continue
		}
		for _, name := range p.GoFiles {
			path := filepath.Join(p.Dir, name)
			file, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			checked++
			for _, lit := range statusLiterals(file, values) {
				t.Errorf("%s: status %s spelled out; use its contract constant", fset.Position(lit.Pos()), lit.Value)
			}
		}
	}
	if checked < 50 {
		t.Fatalf("checked only %d files: the shipped package list looks wrong", checked)
	}
}

// The check itself finds what it must and passes over what it must not.
func TestStatusLiteralsCheck(t *testing.T) {
	src := `package x
func f(p P, c C) {
	if p.Status == "succeeded" {}
	switch p.Status { case "void": }
	switch l.Kind { case "void": }
	if l.Kind == "paid" {}
	_ = P{Status: "paid"}
	p.Status = "open"
	_ = InvoiceStatus("refunded")
	_ = c.Query("paid")
	_ = []string{"payment", p.ID, "failed"}
	_ = "SELECT 1 WHERE status='open'"
	log("status", "open")
}`
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "x.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, lit := range statusLiterals(file, statusValues()) {
		got = append(got, lit.Value)
	}
	want := `"succeeded" "void" "paid" "open" "refunded"`
	if strings.Join(got, " ") != want {
		t.Fatalf("found %v, want %s", got, want)
	}
}
