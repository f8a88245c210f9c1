// Package templates holds billflow's html/template and text/template files:
// documents printed to PDF (docs/) and emails (email/). It only embeds them;
// the documents and mail packages parse and execute them.
package templates

import "embed"

// FS is every template file, rooted at this folder (paths "docs/…", "email/…", "pages/…").
//
//go:embed all:docs all:email all:pages
var FS embed.FS
