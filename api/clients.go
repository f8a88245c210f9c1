package api

import (
	"errors"
	"net/http"
	"net/mail"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/billflow/billflow/store"
)

type createClientReq struct {
	Name        string           `json:"name"`
	Email       string           `json:"email"`
	DateOfBirth string           `json:"date_of_birth,omitempty"`
	Address     *store.Address   `json:"address,omitempty"`
	Insurance   *store.Insurance `json:"insurance,omitempty"`
}

type clientJSON struct {
	ID          string           `json:"id"`
	Object      string           `json:"object"`
	Name        string           `json:"name"`
	Email       string           `json:"email"`
	DateOfBirth string           `json:"date_of_birth,omitempty"`
	Address     *store.Address   `json:"address,omitempty"`
	Insurance   *store.Insurance `json:"insurance,omitempty"`
	CreatedAt   time.Time        `json:"created_at"`
}

func toClientJSON(c *store.Client) clientJSON {
	out := clientJSON{ID: c.ID, Object: "client", Name: c.Name, Email: c.Email, Address: c.Address, Insurance: c.Insurance, CreatedAt: c.CreatedAt}
	if c.DateOfBirth != nil {
		out.DateOfBirth = c.DateOfBirth.Format(time.DateOnly)
	}
	return out
}

func (h *handlers) createClient(c *gin.Context) {
	var req createClientReq
	if !bindJSON(c, &req) {
		return
	}
	req.Name, req.Email = strings.TrimSpace(req.Name), strings.TrimSpace(req.Email)
	if req.Name == "" || len(req.Name) > 200 {
		badRequest(c, "parameter_invalid", "name is required (1-200 characters)", "name")
		return
	}
	if a, err := mail.ParseAddress(req.Email); err != nil || a.Address != req.Email {
		badRequest(c, "parameter_invalid", "email must be a valid email address", "email")
		return
	}
	cl := &store.Client{PracticeID: principalOf(c).PracticeID, Name: req.Name, Email: req.Email, Address: req.Address, Insurance: req.Insurance}
	if req.DateOfBirth != "" {
		dob, err := time.Parse(time.DateOnly, req.DateOfBirth)
		if err != nil || dob.After(h.Now()) || dob.Year() < 1900 {
			badRequest(c, "parameter_invalid", "date_of_birth must be a past date as YYYY-MM-DD", "date_of_birth")
			return
		}
		cl.DateOfBirth = &dob
	}
	out, err := h.Store.CreateClient(c.Request.Context(), cl)
	if err != nil {
		h.internal(c, "create client", err)
		return
	}
	c.JSON(http.StatusCreated, toClientJSON(out))
}

// loadClient reads a client the caller may see, or answers 404.
func (h *handlers) loadClient(c *gin.Context) (*store.Client, bool) {
	p := principalOf(c)
	id := c.Param("id")
	if p.ClientID != "" && p.ClientID != id {
		notFound(c, "client")
		return nil, false
	}
	cl, err := h.Store.GetClient(c.Request.Context(), p.PracticeID, id)
	if errors.Is(err, store.ErrNotFound) {
		notFound(c, "client")
		return nil, false
	}
	if err != nil {
		h.internal(c, "get client", err)
		return nil, false
	}
	return cl, true
}

func (h *handlers) getClient(c *gin.Context) {
	if cl, ok := h.loadClient(c); ok {
		c.JSON(http.StatusOK, toClientJSON(cl))
	}
}

type portalTokenReq struct {
	ExpiresInDays *int64 `json:"expires_in_days,omitempty"`
}

// createPortalToken issues a client portal token (default 30 days, at most 90).
func (h *handlers) createPortalToken(c *gin.Context) {
	cl, ok := h.loadClient(c)
	if !ok {
		return
	}
	var req portalTokenReq
	if !bindOptionalJSON(c, &req) {
		return
	}
	days := int64(30)
	if req.ExpiresInDays != nil {
		if *req.ExpiresInDays < 1 || *req.ExpiresInDays > 90 {
			badRequest(c, "parameter_invalid", "expires_in_days must be from 1 to 90", "expires_in_days")
			return
		}
		days = *req.ExpiresInDays
	}
	tok, exp, err := h.Store.CreatePortalToken(c.Request.Context(), cl.PracticeID, cl.ID, time.Duration(days)*24*time.Hour)
	if err != nil {
		h.internal(c, "create portal token", err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"token": tok, "expires_at": exp, "client_id": cl.ID,
		"portal_url": h.Config.PublicBaseURL + "/portal?token=" + tok})
}
