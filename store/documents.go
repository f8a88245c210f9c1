package store

import (
	"context"
	"crypto/sha256"
	"time"

	"github.com/jackc/pgx/v5"
)

// Document is a rendered PDF: an invoice, receipt, statement or superbill.
type Document struct {
	ID         string     `json:"id"`
	PracticeID string     `json:"-"`
	ClientID   string     `json:"client_id"`
	InvoiceID  string     `json:"invoice_id,omitempty"`
	Kind       string     `json:"kind"`
	PeriodFrom *time.Time `json:"period_from,omitempty"`
	PeriodTo   *time.Time `json:"period_to,omitempty"`
	SHA256     []byte     `json:"-"`
	Size       int64      `json:"size"`
	CreatedAt  time.Time  `json:"created_at"`
}

const documentCols = `id, practice_id, client_id, COALESCE(invoice_id,''), kind, period_from, period_to, sha256, size, created_at`

func scanDocument(row pgx.Row) (*Document, error) {
	var d Document
	if err := row.Scan(&d.ID, &d.PracticeID, &d.ClientID, &d.InvoiceID, &d.Kind, &d.PeriodFrom, &d.PeriodTo, &d.SHA256, &d.Size, &d.CreatedAt); err != nil {
		return nil, err
	}
	return &d, nil
}

// SaveDocument stores a PDF once: the same bytes for the same owner and kind
// return the document already stored.
func (s *Store) SaveDocument(ctx context.Context, d *Document, content []byte) (*Document, error) {
	sum := sha256.Sum256(content)
	if d.ID == "" {
		d.ID = NewID("doc")
	}
	const q = `WITH ins AS (
 INSERT INTO documents (id, practice_id, client_id, invoice_id, kind, period_from, period_to, sha256, size, content)
 VALUES ($1,$2,$3,NULLIF($4,''),$5,$6,$7,$8,$9,$10)
 ON CONFLICT (practice_id, client_id, kind, sha256) DO NOTHING RETURNING ` + documentCols + `)
SELECT * FROM ins UNION ALL
SELECT ` + documentCols + ` FROM documents WHERE practice_id=$2 AND client_id=$3 AND kind=$5 AND sha256=$8 LIMIT 1`
	out, err := scanDocument(s.Pool.QueryRow(ctx, q, d.ID, d.PracticeID, d.ClientID, d.InvoiceID, d.Kind, d.PeriodFrom, d.PeriodTo,
		sum[:], int64(len(content)), content))
	return out, mapErr("save document", err)
}

// GetDocument reads a document's metadata.
func (s *Store) GetDocument(ctx context.Context, id string) (*Document, error) {
	d, err := scanDocument(s.Pool.QueryRow(ctx, `SELECT `+documentCols+` FROM documents WHERE id=$1`, id))
	return d, mapErr("get document "+id, err)
}

// DocumentContent reads a document's bytes.
func (s *Store) DocumentContent(ctx context.Context, id string) ([]byte, error) {
	var b []byte
	err := s.Pool.QueryRow(ctx, `SELECT content FROM documents WHERE id=$1`, id).Scan(&b)
	return b, mapErr("document content "+id, err)
}

// LatestInvoiceDocument is the newest invoice or receipt PDF of an invoice.
func (s *Store) LatestInvoiceDocument(ctx context.Context, invoiceID string) (*Document, error) {
	d, err := scanDocument(s.Pool.QueryRow(ctx, `SELECT `+documentCols+` FROM documents WHERE invoice_id=$1
 AND kind IN ('invoice','receipt') ORDER BY (kind='receipt') DESC, created_at DESC LIMIT 1`, invoiceID))
	return d, mapErr("latest invoice document", err)
}

// ListDocuments lists a client's documents of one kind, newest first.
func (s *Store) ListDocuments(ctx context.Context, clientID, kind string) ([]*Document, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+documentCols+` FROM documents WHERE client_id=$1 AND kind=$2 ORDER BY created_at DESC, id`, clientID, kind)
	if err != nil {
		return nil, mapErr("list documents", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Document, error) { return scanDocument(r) })
	return out, mapErr("list documents", err)
}

// EmailStatus is where one logical email stands.
type EmailStatus string

// Email statuses.
const (
	EmailSending  EmailStatus = "sending"
	EmailSent     EmailStatus = "sent"
	EmailRejected EmailStatus = "rejected"
)

// ClaimEmail records an attempt to send one logical email (by Message-ID) and
// says where it stands: a sent or rejected email must not be sent again.
func (s *Store) ClaimEmail(ctx context.Context, messageID, practiceID, clientID, invoiceID, kind string) (EmailStatus, error) {
	var st EmailStatus
	err := s.Pool.QueryRow(ctx, `INSERT INTO emails (message_id, practice_id, client_id, invoice_id, kind, status, attempts)
 VALUES ($1,$2,NULLIF($3,''),NULLIF($4,''),$5,'sending',1)
 ON CONFLICT (message_id) DO UPDATE SET attempts = emails.attempts + CASE WHEN emails.status='sending' THEN 1 ELSE 0 END
 RETURNING status`, messageID, practiceID, clientID, invoiceID, kind).Scan(&st)
	return st, mapErr("claim email", err)
}

// FinishEmail records that the server accepted (sent) or permanently refused (rejected) an email.
func (s *Store) FinishEmail(ctx context.Context, messageID string, st EmailStatus, lastErr string) error {
	_, err := s.Pool.Exec(ctx, `UPDATE emails SET status=$2, last_error=$3, sent_at = CASE WHEN $2='sent' THEN now() ELSE sent_at END
 WHERE message_id=$1`, messageID, st, lastErr)
	return mapErr("finish email", err)
}

// NoteEmailError keeps the last transient failure for operators.
func (s *Store) NoteEmailError(ctx context.Context, messageID, lastErr string) error {
	_, err := s.Pool.Exec(ctx, `UPDATE emails SET last_error=$2 WHERE message_id=$1 AND status='sending'`, messageID, lastErr)
	return mapErr("note email error", err)
}

// PayLink is a stored (hashed) pay-link token.
type PayLink struct {
	ID        string
	InvoiceID string
	ExpiresAt time.Time
	RevokedAt *time.Time
}

// SavePayLink stores a token's hash.
func (s *Store) SavePayLink(ctx context.Context, invoiceID string, hash []byte, expires time.Time) error {
	_, err := s.Pool.Exec(ctx, `INSERT INTO pay_links (id, invoice_id, token_hash, expires_at) VALUES ($1,$2,$3,$4)`,
		NewID("pl"), invoiceID, hash, expires)
	return mapErr("save pay link", err)
}

// PayLinkByHash finds a stored token.
func (s *Store) PayLinkByHash(ctx context.Context, hash []byte) (*PayLink, error) {
	var p PayLink
	err := s.Pool.QueryRow(ctx, `SELECT id, invoice_id, expires_at, revoked_at FROM pay_links WHERE token_hash=$1`, hash).
		Scan(&p.ID, &p.InvoiceID, &p.ExpiresAt, &p.RevokedAt)
	if err != nil {
		return nil, mapErr("pay link", err)
	}
	return &p, nil
}

// RevokePayLinks kills every link of an invoice.
func (s *Store) RevokePayLinks(ctx context.Context, invoiceID string) error {
	_, err := s.Pool.Exec(ctx, `UPDATE pay_links SET revoked_at=now() WHERE invoice_id=$1 AND revoked_at IS NULL`, invoiceID)
	return mapErr("revoke pay links", err)
}
