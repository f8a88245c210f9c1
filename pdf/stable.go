package pdf

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"time"
)

// pdfDateRE matches the creation and modification dates Chromium writes into
// every PDF's info dictionary: "/CreationDate (D:20261123130916+00'00')".
var pdfDateRE = regexp.MustCompile(`/(CreationDate|ModDate) \(D:\d{14}`)

// pdfNodeRE matches the DOM node IDs Chromium writes into a tagged PDF's
// structure tree ("/ID (node00000046)"); they count up per tab, so the same
// HTML printed twice gets different ones.
var pdfNodeRE = regexp.MustCompile(`\(node(\d{8})\)`)

// Stable makes a Chromium PDF a function of its HTML alone: it pins the
// creation and modification timestamps to at and renumbers the structure
// tree's node IDs by rank (so sorted ID trees stay sorted), changing no
// byte's offset. Printing the same HTML twice then yields identical bytes,
// and SaveDocument keeps one copy.
func Stable(b []byte, at time.Time) []byte {
	stamp := []byte(at.UTC().Format("20060102150405"))
	out := pdfDateRE.ReplaceAllFunc(b, func(m []byte) []byte {
		m = bytes.Clone(m)
		copy(m[len(m)-14:], stamp)
		return m
	})
	var ids []string
	seen := map[string]bool{}
	for _, m := range pdfNodeRE.FindAllSubmatch(out, -1) {
		if id := string(m[1]); !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	slices.Sort(ids) // fixed width: string order is numeric order
	rank := make(map[string]string, len(ids))
	for i, id := range ids {
		rank[id] = fmt.Sprintf("%08d", i+1)
	}
	return pdfNodeRE.ReplaceAllFunc(out, func(m []byte) []byte {
		return []byte("(node" + rank[string(m[5:13])] + ")")
	})
}
