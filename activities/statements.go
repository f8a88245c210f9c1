package activities

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/documents"
	"github.com/billflow/billflow/mail"
	"github.com/billflow/billflow/money"
	"github.com/billflow/billflow/pdf"
	"github.com/billflow/billflow/store"
)

// ErrTypeNothingToRender marks a superbill asked for a period without services.
const ErrTypeNothingToRender = contract.ErrTypeNothingToRender

// StatementInput asks for one client's statement over [From, To] (dates). It
// carries IDs and dates only; the activity reads the rest from Postgres.
type StatementInput struct {
	PracticeID string
	ClientID   string
	Currency   string // "" = the currency the client is mostly billed in
	From, To   time.Time
	Email      bool   // also send the statement_ready email, once per client, period and currency
	RunID      string // the statement run that asked, for logs
}

// SuperbillInput asks for one client's superbill over [From, To].
type SuperbillInput struct {
	PracticeID string
	ClientID   string
	Currency   string // "" = the currency the client is mostly billed in
	From, To   time.Time
}

// DocumentResult names the stored document and whether an email went out.
type DocumentResult struct {
	DocumentID string
	Kind       string
	Currency   string
	Size       int64
	Emailed    bool
	// AlreadySent: the statement email for this client and period went out
	// before (an earlier or interrupted run), so nothing was rendered or sent.
	AlreadySent bool
}

// StatementPageInput asks for a page of clients with ledger activity in a period.
type StatementPageInput struct {
	From, To      time.Time
	AfterClientID string
	Limit         int
}

// StatementClient is one client to send a statement to, with the currencies
// its account moved in during the period (one statement each).
type StatementClient struct {
	PracticeID string
	ClientID   string
	Currencies []string
}

// StatementPageResult is one page; LastClientID is the next page's cursor.
type StatementPageResult struct {
	Clients      []StatementClient
	LastClientID string
}

// ListStatementClients pages (keyset by client ID) through clients with any
// ledger activity in the period.
func (a *Activities) ListStatementClients(ctx context.Context, in *StatementPageInput) (*StatementPageResult, error) {
	limit := in.Limit
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	page, err := a.Store.StatementClients(ctx, a.scope(ctx), in.From, in.To, in.AfterClientID, limit)
	if err != nil {
		return nil, err
	}
	out := &StatementPageResult{Clients: make([]StatementClient, 0, len(page))}
	for _, c := range page {
		out.Clients = append(out.Clients, StatementClient{PracticeID: c.PracticeID, ClientID: c.ClientID, Currencies: c.Currencies})
		out.LastClientID = c.ClientID
	}
	return out, nil
}

// clientDoc is what a client-level document needs from Postgres.
type clientDoc struct {
	practice *store.Practice
	client   *store.Client
	currency string
}

func (a *Activities) loadClientDoc(ctx context.Context, practiceID, clientID, currency string) (*clientDoc, error) {
	d := &clientDoc{}
	var err error
	if d.practice, err = a.Store.GetPractice(ctx, practiceID); err != nil {
		return nil, err
	}
	if d.client, err = a.Store.GetClient(ctx, practiceID, clientID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, temporal.NewNonRetryableApplicationError("no such client "+clientID, "NotFound", err)
		}
		return nil, err
	}
	d.currency = currency
	if d.currency == "" {
		curs, err := a.Store.ClientCurrencies(ctx, practiceID, clientID)
		if err != nil {
			return nil, err
		}
		d.currency = d.practice.Currency
		if len(curs) > 0 && !slices.Contains(curs, d.practice.Currency) {
			d.currency = curs[0]
		}
	}
	return d, nil
}

// RenderStatement prints a client's statement for a period, stores it once
// (the PDF is byte-stable for the same account data, so a retry or a second
// run finds the stored document), and when asked emails it once.
func (a *Activities) RenderStatement(ctx context.Context, in *StatementInput) (*DocumentResult, error) {
	d, err := a.loadClientDoc(ctx, in.PracticeID, in.ClientID, in.Currency)
	if err != nil {
		return nil, err
	}
	idParts := []string{"statement", periodKey(in.From, in.To)}
	if d.currency != d.practice.Currency {
		idParts = append(idParts, d.currency)
	}
	if in.Email {
		// A run resumed or repeated passes over clients it already did.
		st, err := a.Store.EmailStatusOf(ctx, mail.MessageID(a.mailDomain(), append([]string{d.client.ID}, idParts...)...))
		if err == nil && st != store.EmailSending {
			return &DocumentResult{Kind: "statement", Currency: d.currency, AlreadySent: true}, nil
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	acc, err := a.Store.ClientAccount(ctx, in.PracticeID, in.ClientID, d.currency, in.From, in.To)
	if err != nil {
		return nil, err
	}
	view := &documents.Statement{Practice: practiceView(d.practice), Client: clientView(d.client), Currency: d.currency,
		From: in.From, To: in.To, OpeningBalance: acc.OpeningBalance, ClosingBalance: acc.ClosingBalance}
	for _, l := range acc.Lines {
		view.Lines = append(view.Lines, statementLine(l, d.currency))
	}
	html, err := documents.StatementHTML(view)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError("render statement", "RenderFailed", err)
	}
	doc, pdfBytes, err := a.renderClientDoc(ctx, d, "statement", html, in.From, in.To, "Statement "+periodLabel(in.From, in.To))
	if err != nil {
		return nil, err
	}
	res := &DocumentResult{DocumentID: doc.ID, Kind: doc.Kind, Currency: d.currency, Size: doc.Size}
	if in.Email {
		// The email's link signs the client in to the Billing & Payments page:
		// a portal token scoped to this client, valid for 30 days.
		tok, _, err := a.Store.CreatePortalToken(ctx, d.practice.ID, d.client.ID, statementPortalTTL)
		if err != nil {
			return nil, err
		}
		res.Emailed, err = a.sendClientOnce(ctx, d, mail.KindStatementReady, idParts, mail.StatementReady{
			PracticeName: d.practice.Name, PracticeEmail: d.practice.Email, PracticePhone: d.practice.Phone,
			ClientName: d.client.Name, Currency: d.currency, From: in.From, To: in.To, ClosingBalance: acc.ClosingBalance,
			PortalURL: a.PublicBaseURL + "/portal?token=" + url.QueryEscape(tok),
		}, pdfAttachment(doc.Filename(""), pdfBytes))
		if err != nil {
			return nil, err
		}
	}
	a.log().Info("statement rendered", "client_id", in.ClientID, "document_id", doc.ID, "emailed", res.Emailed, "run_id", in.RunID)
	return res, nil
}

// statementPortalTTL is how long a statement email's portal link works.
const statementPortalTTL = 30 * 24 * time.Hour

// statementLine words one account line for the client.
func statementLine(l store.AccountLine, currency string) documents.StatementLine {
	out := documents.StatementLine{Date: l.Date, Reference: l.InvoiceNumber, Amount: l.Amount}
	method := ""
	if l.MethodType != "" || l.Brand != "" {
		method = MethodLabel(l.MethodType, l.Brand, l.Last4, l.BankName)
	}
	switch l.Kind {
	case "invoice":
		out.Kind, out.Description = "invoice", "Invoice "+l.InvoiceNumber
	case "void":
		out.Kind, out.Description = "invoice", "Invoice "+l.InvoiceNumber+" voided"
	case "payment":
		out.Kind, out.Description = "payment", "Payment"
		if method != "" {
			out.Description += " · " + method
		}
	case "payment_reversal":
		out.Kind, out.Description = "payment", "Payment reversed"
		if method != "" {
			out.Description += " · " + method
		}
	case "refund":
		out.Kind = "refund"
		out.Description = "Refund of " + money.Format(l.Refunded, currency)
		if method != "" {
			out.Description += " to " + method
		}
		if l.Amount == 0 {
			out.Description += "; the invoice is credited the same amount"
		}
	default:
		out.Kind, out.Description = "invoice", l.Kind
	}
	return out
}

// RenderSuperbill prints a client's superbill for a period and stores it once.
func (a *Activities) RenderSuperbill(ctx context.Context, in *SuperbillInput) (*DocumentResult, error) {
	d, err := a.loadClientDoc(ctx, in.PracticeID, in.ClientID, in.Currency)
	if err != nil {
		return nil, err
	}
	items, err := a.Store.SuperbillItems(ctx, in.PracticeID, in.ClientID, d.currency, in.From, in.To)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, temporal.NewNonRetryableApplicationError("the client has no billed services in this period", ErrTypeNothingToRender, nil)
	}
	view := &documents.Superbill{Practice: practiceView(d.practice), Client: clientView(d.client), Currency: d.currency,
		From: in.From, To: in.To, PaidInFull: true}
	for _, it := range items {
		view.Lines = append(view.Lines, documents.SuperbillLine{ServiceDate: it.ServiceDate, PlaceOfService: it.PlaceOfService,
			CPTCode: it.CPTCode, Modifiers: it.Modifiers, Description: it.Description, Units: it.Units,
			DiagnosisCodes: it.DiagnosisCodes, Fee: it.Amount, Paid: it.Paid})
		if it.Paid < it.Amount {
			view.PaidInFull = false
		}
	}
	html, err := documents.SuperbillHTML(view)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError("render superbill", "RenderFailed", err)
	}
	doc, _, err := a.renderClientDoc(ctx, d, "superbill", html, in.From, in.To, "Superbill "+periodLabel(in.From, in.To))
	if err != nil {
		return nil, err
	}
	a.log().Info("superbill rendered", "client_id", in.ClientID, "document_id", doc.ID)
	return &DocumentResult{DocumentID: doc.ID, Kind: doc.Kind, Currency: d.currency, Size: doc.Size}, nil
}

// renderClientDoc prints a client-level document, pins the PDF's dates so
// the same account data gives the same bytes, and stores it once.
func (a *Activities) renderClientDoc(ctx context.Context, d *clientDoc, kind string, html []byte, from, to time.Time, title string) (*store.Document, []byte, error) {
	pdfBytes, err := a.Renderer.Render(ctx, html, pdf.PageOptions{Paper: d.practice.Paper, Title: d.practice.Name + " · " + title})
	if err != nil {
		return nil, nil, fmt.Errorf("render %s pdf: %w", kind, err)
	}
	pdfBytes = pdf.Stable(pdfBytes, to)
	pf, pt := from, to
	doc, err := a.Store.SaveDocument(ctx, &store.Document{PracticeID: d.practice.ID, ClientID: d.client.ID, Kind: kind,
		PeriodFrom: &pf, PeriodTo: &pt}, pdfBytes)
	if err != nil {
		return nil, nil, err
	}
	return doc, pdfBytes, nil
}

// periodKey names a period in a Message-ID: "2026-10" for a calendar month,
// else "2026-10-01_2026-12-31".
func periodKey(from, to time.Time) string {
	if from.Day() == 1 && to.Equal(from.AddDate(0, 1, -1)) {
		return from.Format("2006-01")
	}
	return from.Format(time.DateOnly) + "_" + to.Format(time.DateOnly)
}

// periodLabel is the human form: "Oct 2026" or "Oct 1, 2026 – Dec 31, 2026".
func periodLabel(from, to time.Time) string {
	if from.Day() == 1 && to.Equal(from.AddDate(0, 1, -1)) {
		return from.Format("Jan 2006")
	}
	return from.Format("Jan 2, 2006") + " – " + to.Format("Jan 2, 2006")
}

// sendClientOnce is sendOnce for emails about a client rather than one
// invoice (the statement): the Message-ID starts with the client ID.
func (a *Activities) sendClientOnce(ctx context.Context, d *clientDoc, kind mail.Kind, idParts []string, data any, att []mail.Attachment) (bool, error) {
	return a.deliverOnce(ctx, emailTo{
		MessageID:  mail.MessageID(a.mailDomain(), append([]string{d.client.ID}, idParts...)...),
		PracticeID: d.practice.ID, ClientID: d.client.ID,
		Practice: d.practice, Client: d.client, LogKey: "client_id", LogID: d.client.ID,
	}, kind, data, att)
}
