package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The API makes no processor call: saving and removing cards go through
// package cards, charges and refunds through the workflows' activities. It
// may use package payments for its error kinds and webhook verification,
// which call nothing; a gateway (its type, its constructor, or a Gateway
// field reached through another package) in an API file fails here.
func TestAPIMakesNoProcessorCalls(t *testing.T) {
	fset := token.NewFileSet()
	var api *pkg
	for _, p := range deps(t, module+"/api") {
		if p.ImportPath == module+"/api" {
			api = &p
		}
	}
	if api == nil || len(api.GoFiles) < 10 {
		t.Fatalf("api package files not found: %+v", api)
	}
	forbidden := map[string]bool{"Gateway": true, "NewStripe": true, "StripeConfig": true}
	for _, name := range api.GoFiles {
		path := filepath.Join(api.Dir, name)
		file, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range file.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); strings.HasPrefix(p, "github.com/stripe/") {
				t.Errorf("%s: imports %s; Stripe is reached through payments, from cards and the activities", fset.Position(imp.Pos()), p)
			}
		}
		ast.Inspect(file, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok && forbidden[sel.Sel.Name] {
				t.Errorf("%s: %s in the API; processor calls belong to package cards and the activities", fset.Position(sel.Pos()), sel.Sel.Name)
			}
			return true
		})
	}
}
