package archtest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// maxShippedLines bounds a shipped Go file (issue 19 item 5): past it a
// file holds more than one seam and is split along them, as pure moves.
const maxShippedLines = 450

// oversizeAllowed are shipped files allowed over the bound while their
// split is pending, by path from the module root: none. The list is exact:
// a file on it that is back under the bound (or gone) fails too, so it only
// shrinks.
var oversizeAllowed = map[string]bool{}

// fileSize is one shipped file's path from the module root and line count.
type fileSize struct {
	path  string
	lines int
}

// sizeProblems lists each file over max that allowed does not name, and each
// allowed file that is no longer over it or not shipped at all.
func sizeProblems(files []fileSize, max int, allowed map[string]bool) []string {
	var problems []string
	seen := map[string]bool{}
	for _, f := range files {
		seen[f.path] = true
		switch over := f.lines > max; {
		case over && !allowed[f.path]:
			problems = append(problems, fmt.Sprintf("%s: %d lines, over the %d a shipped file may have; split it along its seams", f.path, f.lines, max))
		case !over && allowed[f.path]:
			problems = append(problems, fmt.Sprintf("%s: %d lines, no longer over %d; drop it from oversizeAllowed", f.path, f.lines, max))
		}
	}
	for path := range allowed {
		if !seen[path] {
			problems = append(problems, fmt.Sprintf("%s: in oversizeAllowed but not a shipped file; drop it", path))
		}
	}
	sort.Strings(problems)
	return problems
}

// countLines counts lines as wc -l does, plus a last line without a newline.
func countLines(data []byte) int {
	n := bytes.Count(data, []byte("\n"))
	if len(data) > 0 && data[len(data)-1] != '\n' {
		n++
	}
	return n
}

// No shipped Go file (the non-test files of every billflow package
// cmd/billflow links) passes maxShippedLines.
func TestShippedFilesStaySmall(t *testing.T) {
	var files []fileSize
	for _, p := range deps(t, module+"/cmd/billflow") {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		for _, name := range p.GoFiles {
			data, err := os.ReadFile(filepath.Join(p.Dir, name))
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, fileSize{path: filepath.ToSlash(filepath.Join(rel, name)), lines: countLines(data)})
		}
	}
	if len(files) < 50 {
		t.Fatalf("found only %d shipped files: the shipped package list looks wrong", len(files))
	}
	for _, problem := range sizeProblems(files, maxShippedLines, oversizeAllowed) {
		t.Error(problem)
	}
	for _, f := range files {
		if oversizeAllowed[f.path] && f.lines > maxShippedLines {
			t.Logf("%s: %d lines, allowed while its split is pending", f.path, f.lines)
		}
	}
}

// The check itself names every offender and keeps the allow-list exact.
func TestSizeProblemsCheck(t *testing.T) {
	files := []fileSize{
		{"a/big.go", 451}, {"a/edge.go", 450}, {"b/huge.go", 900},
		{"b/pending.go", 600}, {"b/done.go", 120}, {"c/empty.go", 0},
	}
	allowed := map[string]bool{"b/pending.go": true, "b/done.go": true, "b/gone.go": true}
	got := sizeProblems(files, 450, allowed)
	want := []string{
		"a/big.go: 451 lines, over the 450 a shipped file may have; split it along its seams",
		"b/done.go: 120 lines, no longer over 450; drop it from oversizeAllowed",
		"b/gone.go: in oversizeAllowed but not a shipped file; drop it",
		"b/huge.go: 900 lines, over the 450 a shipped file may have; split it along its seams",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for in, want := range map[string]int{"": 0, "a": 1, "a\n": 1, "a\nb": 2, "a\nb\n": 2, "\n\n": 2} {
		if got := countLines([]byte(in)); got != want {
			t.Errorf("countLines(%q) = %d, want %d", in, got, want)
		}
	}
}
