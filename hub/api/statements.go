package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
)

// StatementRequest asks for a contributor's statement of a period.
type StatementRequest struct {
	// Contributor defaults to the caller; only operators may name another.
	Contributor string    `json:"contributor,omitempty"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
}

// issueStatement issues (once per contributor and period) the statement of
// what a contributor earned in [from, to): 201 with the statement, which
// is then also served at /api/invoices/:number.
func (s *Server) issueStatement(c echo.Context) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	var req StatementRequest
	if err := decodeJSON(c.Request().Body, &req, false); err != nil {
		return err
	}
	switch {
	case req.Contributor == "" || req.Contributor == p.Name:
		if p.Role != auth.RoleContributor && !p.IsOperator() {
			return coded.Errorf(ledger.CodeForbidden, "statements are for contributors; %s's token is for the %s role", p.Name, p.Role)
		}
		if req.Contributor == "" {
			req.Contributor = p.Name
		}
	case !p.IsOperator():
		return coded.Errorf(ledger.CodeForbidden, "only the hub's operators may ask for another contributor's statement")
	}
	if req.From.IsZero() || req.To.IsZero() {
		return badf(`a statement needs "from" and "to" (RFC 3339 times)`)
	}
	inv, err := s.deps.Jobs.Statement(c.Request().Context(), req.Contributor, req.From, req.To)
	if err != nil {
		return jobError(err, fmt.Sprintf("statement of %s", req.Contributor))
	}
	return c.JSON(http.StatusCreated, inv)
}
