package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Practice is a billing account: one therapist's or clinic's settings.
type Practice struct {
	ID                        string   `json:"id"`
	Name                      string   `json:"name"`
	Currency                  string   `json:"currency"`
	Timezone                  string   `json:"timezone"`
	Email                     string   `json:"email"`
	Phone                     string   `json:"phone"`
	AddressLines              []string `json:"address_lines"`
	LogoDataURI               string   `json:"-"`
	ProviderName              string   `json:"provider_name"`
	Credentials               string   `json:"credentials"`
	NPI                       string   `json:"npi"`
	TaxID                     string   `json:"tax_id"`
	LicenseNumber             string   `json:"license_number"`
	LicenseState              string   `json:"license_state"`
	Paper                     string   `json:"paper"`
	AllowClientCardRemoval    bool     `json:"allow_client_card_removal"`
	ShowClientNamesInTemporal bool     `json:"show_client_names_in_temporal"`
	ReminderOffsetsDays       []int32  `json:"reminder_offsets_days"`
	PayLinkDaysAfterDue       int32    `json:"pay_link_days_after_due"`
	RefundWindowDays          int32    `json:"refund_window_days"`
	// TemporalNamespace is the practice's own Temporal namespace; "" for
	// practices made before namespaces, which run in the shared one.
	TemporalNamespace string    `json:"-"`
	CreatedAt         time.Time `json:"created_at"`
}

const practiceCols = `id, name, currency, timezone, email, phone, address_lines, logo_data_uri, provider_name, credentials,
 npi, tax_id, license_number, license_state, paper, allow_client_card_removal, show_client_names_in_temporal,
 reminder_offsets_days, pay_link_days_after_due, refund_window_days, COALESCE(temporal_namespace, ''), created_at`

func scanPractice(row pgx.Row) (*Practice, error) {
	var p Practice
	err := row.Scan(&p.ID, &p.Name, &p.Currency, &p.Timezone, &p.Email, &p.Phone, &p.AddressLines, &p.LogoDataURI,
		&p.ProviderName, &p.Credentials, &p.NPI, &p.TaxID, &p.LicenseNumber, &p.LicenseState, &p.Paper,
		&p.AllowClientCardRemoval, &p.ShowClientNamesInTemporal, &p.ReminderOffsetsDays, &p.PayLinkDaysAfterDue,
		&p.RefundWindowDays, &p.TemporalNamespace, &p.CreatedAt)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// NewPractice is what `billflow practice create` supplies.
type NewPractice struct {
	Name     string
	Currency string
	Timezone string
	Email    string
	// ID, TemporalNamespace and DataKey come from tenancy.CreatePractice:
	// the namespace is on the row, with the first data key, before the
	// namespace is registered. Left empty, the practice gets a new ID and
	// runs in the shared namespace under the master key.
	ID                string
	TemporalNamespace string
	DataKey           *DataKey
}

const insertPractice = `INSERT INTO practices (id, name, currency, timezone, email, temporal_namespace)
 VALUES ($1,$2,$3,$4,$5,NULLIF($6,'')) RETURNING ` + practiceCols

// CreatePractice inserts a practice, its first data key if given, and its
// first API key, returning the key's plaintext once (only its hash is stored).
func (s *Store) CreatePractice(ctx context.Context, in NewPractice) (*Practice, string, error) {
	var p *Practice
	var key string
	id := in.ID
	if id == "" {
		id = NewID("prac")
	}
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var err error
		p, err = scanPractice(tx.QueryRow(ctx, insertPractice, id, in.Name, strings.ToLower(in.Currency), in.Timezone, in.Email, in.TemporalNamespace))
		if err != nil {
			return err
		}
		if in.DataKey != nil {
			k := *in.DataKey
			k.PracticeID = p.ID
			if err := addDataKey(ctx, tx, k); err != nil {
				return err
			}
		}
		key, err = createAPIKey(ctx, tx, p.ID)
		return err
	})
	if err != nil {
		return nil, "", mapErr("create practice", err)
	}
	return p, key, nil
}

// GetPractice reads one practice.
func (s *Store) GetPractice(ctx context.Context, id string) (*Practice, error) {
	p, err := scanPractice(s.Pool.QueryRow(ctx, `SELECT `+practiceCols+` FROM practices WHERE id=$1`, id))
	return p, mapErr("get practice "+id, err)
}

// PracticeSettings is the part of a practice a practitioner may change.
type PracticeSettings struct {
	AllowClientCardRemoval    *bool
	ShowClientNamesInTemporal *bool
	ReminderOffsetsDays       []int32
	RefundWindowDays          *int32
	PayLinkDaysAfterDue       *int32
}

// UpdatePracticeSettings changes only the given settings.
func (s *Store) UpdatePracticeSettings(ctx context.Context, id string, in PracticeSettings) (*Practice, error) {
	const q = `UPDATE practices SET
 allow_client_card_removal = COALESCE($2, allow_client_card_removal),
 show_client_names_in_temporal = COALESCE($3, show_client_names_in_temporal),
 reminder_offsets_days = COALESCE($4, reminder_offsets_days),
 refund_window_days = COALESCE($5, refund_window_days),
 pay_link_days_after_due = COALESCE($6, pay_link_days_after_due)
 WHERE id=$1 RETURNING ` + practiceCols
	p, err := scanPractice(s.Pool.QueryRow(ctx, q, id, in.AllowClientCardRemoval, in.ShowClientNamesInTemporal,
		in.ReminderOffsetsDays, in.RefundWindowDays, in.PayLinkDaysAfterDue))
	return p, mapErr("update practice "+id, err)
}

// API keys look like "bf_live_<prefix>_<secret>"; we store sha256(key).
const apiKeyPrefix = "bf_sk_"

func hashToken(tok string) []byte {
	sum := sha256.Sum256([]byte(tok))
	return sum[:]
}

func createAPIKey(ctx context.Context, tx pgx.Tx, practiceID string) (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	key := apiKeyPrefix + idEncoding.EncodeToString(b)
	_, err := tx.Exec(ctx, `INSERT INTO api_keys (id, practice_id, prefix, key_hash) VALUES ($1,$2,$3,$4)`,
		NewID("key"), practiceID, key[:len(apiKeyPrefix)+6], hashToken(key))
	return key, err
}

// CreateAPIKey issues another key for a practice.
func (s *Store) CreateAPIKey(ctx context.Context, practiceID string) (string, error) {
	var key string
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var err error
		key, err = createAPIKey(ctx, tx, practiceID)
		return err
	})
	return key, mapErr("create api key", err)
}

// PracticeIDForAPIKey authenticates a bearer key. The lookup is by hash (an
// index probe that reveals nothing about the key), and the stored hash is
// compared again in constant time.
func (s *Store) PracticeIDForAPIKey(ctx context.Context, key string) (string, error) {
	if !strings.HasPrefix(key, apiKeyPrefix) {
		return "", fmt.Errorf("api key: %w", ErrNotFound)
	}
	h := hashToken(key)
	var practiceID string
	var stored []byte
	err := s.Pool.QueryRow(ctx, `SELECT practice_id, key_hash FROM api_keys WHERE key_hash=$1 AND revoked_at IS NULL`, h).Scan(&practiceID, &stored)
	if err != nil {
		return "", mapErr("api key", err)
	}
	if subtle.ConstantTimeCompare(stored, h) != 1 {
		return "", fmt.Errorf("api key: %w", ErrNotFound)
	}
	return practiceID, nil
}

// Address is a postal address as clients give it.
type Address struct {
	Line1      string `json:"line1,omitempty"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city,omitempty"`
	State      string `json:"state,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
	Country    string `json:"country,omitempty"`
}

// Insurance is what a superbill needs to identify the client's coverage.
type Insurance struct {
	Payer        string `json:"payer,omitempty"`
	MemberID     string `json:"member_id,omitempty"`
	GroupNumber  string `json:"group_number,omitempty"`
	Relationship string `json:"relationship,omitempty"`
}

// Client is a practice's client (the patient and usually the payer).
type Client struct {
	ID               string     `json:"id"`
	PracticeID       string     `json:"practice_id"`
	Name             string     `json:"name"`
	Email            string     `json:"email"`
	DateOfBirth      *time.Time `json:"date_of_birth,omitempty"`
	Address          *Address   `json:"address,omitempty"`
	Insurance        *Insurance `json:"insurance,omitempty"`
	StripeCustomerID string     `json:"-"`
	CreatedAt        time.Time  `json:"created_at"`
}

const clientCols = `id, practice_id, name, email, date_of_birth, address, insurance, COALESCE(stripe_customer_id,''), created_at`

func scanClient(row pgx.Row) (*Client, error) {
	var c Client
	var addr, ins []byte
	if err := row.Scan(&c.ID, &c.PracticeID, &c.Name, &c.Email, &c.DateOfBirth, &addr, &ins, &c.StripeCustomerID, &c.CreatedAt); err != nil {
		return nil, err
	}
	if len(addr) > 0 && string(addr) != "null" {
		c.Address = &Address{}
		if err := json.Unmarshal(addr, c.Address); err != nil {
			return nil, err
		}
	}
	if len(ins) > 0 && string(ins) != "null" {
		c.Insurance = &Insurance{}
		if err := json.Unmarshal(ins, c.Insurance); err != nil {
			return nil, err
		}
	}
	return &c, nil
}

// CreateClient inserts a client of a practice.
func (s *Store) CreateClient(ctx context.Context, c *Client) (*Client, error) {
	const q = `INSERT INTO clients (id, practice_id, name, email, date_of_birth, address, insurance)
 VALUES ($1,$2,$3,$4,$5,$6,$7) RETURNING ` + clientCols
	if c.ID == "" {
		c.ID = NewID("cli")
	}
	var addr, ins any
	if c.Address != nil {
		addr = c.Address
	}
	if c.Insurance != nil {
		ins = c.Insurance
	}
	out, err := scanClient(s.Pool.QueryRow(ctx, q, c.ID, c.PracticeID, c.Name, c.Email, c.DateOfBirth, addr, ins))
	return out, mapErr("create client", err)
}

// GetClient reads a client within one practice: another practice's client is ErrNotFound.
func (s *Store) GetClient(ctx context.Context, practiceID, id string) (*Client, error) {
	c, err := scanClient(s.Pool.QueryRow(ctx, `SELECT `+clientCols+` FROM clients WHERE practice_id=$1 AND id=$2`, practiceID, id))
	return c, mapErr("get client "+id, err)
}

// SetStripeCustomer stores the lazily created processor customer, once.
func (s *Store) SetStripeCustomer(ctx context.Context, clientID, customerID string) (string, error) {
	var out string
	err := s.Pool.QueryRow(ctx, `UPDATE clients SET stripe_customer_id = COALESCE(stripe_customer_id, $2) WHERE id=$1 RETURNING stripe_customer_id`,
		clientID, customerID).Scan(&out)
	return out, mapErr("set stripe customer", err)
}
