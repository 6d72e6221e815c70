package api

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/payout"
)

// PayoutService makes contributors' payouts (*payout.Service). Safe for
// concurrent use. Lookups of missing objects return *coded.Error with the
// payout package's not-found codes; invalid input, its invalid_... codes.
type PayoutService interface {
	Profile(ctx context.Context, owner string) (payout.Profile, error)
	SetProfile(ctx context.Context, owner string, r payout.ProfileRequest) (payout.Profile, error)
	Payouts(ctx context.Context, owner string, limit int) ([]payout.Payout, error)
	// Run makes (or, for a complete run, returns) the payouts of a period.
	// It blocks until the run is complete.
	Run(ctx context.Context, p payout.Period, by string) (*payout.Run, error)
	Runs(ctx context.Context, limit int) ([]payout.Run, error)
	RunOf(ctx context.Context, p payout.Period) (*payout.Run, error)
	Batch(ctx context.Context, p payout.Period) (*payout.Batch, error)
	AddWithhold(ctx context.Context, owner string, p payout.Period, reason, by string) (payout.Withhold, error)
	ReleaseWithhold(ctx context.Context, id int64, by string) (payout.Withhold, error)
	Withholds(ctx context.Context, all bool) ([]payout.Withhold, error)
}

// PayoutsReply lists payouts (GET /api/payouts).
type PayoutsReply struct {
	Payouts []payout.Payout `json:"payouts"`
}

// PayoutRunsReply lists payout runs (GET /api/payouts/runs).
type PayoutRunsReply struct {
	Runs []payout.Run `json:"runs"`
}

// PayoutRunRequest starts a payout run (POST /api/payouts/runs).
type PayoutRunRequest struct {
	Period string `json:"period"` // "2026-11"
}

// WithholdRequest withholds a contributor's payouts (POST
// /api/payouts/withholds): in Period, or in every period until released
// when Period is empty.
type WithholdRequest struct {
	Owner  string `json:"owner"`
	Period string `json:"period,omitempty"`
	Reason string `json:"reason"`
}

// WithholdsReply lists withholds (GET /api/payouts/withholds).
type WithholdsReply struct {
	Withholds []payout.Withhold `json:"withholds"`
}

func (s *Server) registerPayouts(g *echo.Group, limit echo.MiddlewareFunc) {
	g.GET("/payouts", s.listPayouts)
	g.GET("/payouts/profile", s.getPayoutProfile)
	g.PUT("/payouts/profile", s.setPayoutProfile, limit)
	g.POST("/payouts/runs", s.runPayouts, limit)
	g.GET("/payouts/runs", s.listPayoutRuns)
	g.GET("/payouts/runs/:period", s.getPayoutRun)
	g.GET("/payouts/runs/:period/batch.csv", s.payoutBatch)
	g.GET("/payouts/runs/:period/batch.xml", s.payoutBatch)
	g.GET("/payouts/withholds", s.listWithholds)
	g.POST("/payouts/withholds", s.addWithhold, limit)
	g.POST("/payouts/withholds/:id/release", s.releaseWithhold, limit)
}

// payoutOwner is whose payout data a request is about: the caller, or for
// operators ?owner=. Anyone else's is "not found", so names do not leak.
func payoutOwner(c echo.Context, p auth.Principal, notFound coded.Code) (string, error) {
	owner := c.QueryParam("owner")
	switch {
	case owner == "" || owner == p.Name:
		return p.Name, nil
	case p.IsOperator():
		return owner, nil
	}
	return "", coded.Errorf(notFound, "no payout data of %s", owner)
}

func operatorOnly(c echo.Context, what string) (auth.Principal, error) {
	p, err := principal(c)
	if err != nil {
		return p, err
	}
	if !p.IsOperator() {
		return p, coded.Errorf(ledger.CodeForbidden, "only the hub's operators may %s", what)
	}
	return p, nil
}

func periodParam(c echo.Context) (payout.Period, error) {
	return payout.ParsePeriod(c.Param("period"))
}

// getPayoutProfile returns the caller's payout profile (operators: ?owner=).
func (s *Server) getPayoutProfile(c echo.Context) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	owner, err := payoutOwner(c, p, payout.CodeProfileNotFound)
	if err != nil {
		return err
	}
	prof, err := s.deps.Payouts.Profile(c.Request().Context(), owner)
	if err != nil {
		return payoutError(err, "payout profile of "+owner)
	}
	return c.JSON(http.StatusOK, prof)
}

// setPayoutProfile sets the caller's own payout profile; only the
// contributor itself may, so that nobody else can redirect its money.
func (s *Server) setPayoutProfile(c echo.Context) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	if c.QueryParam("owner") != "" && c.QueryParam("owner") != p.Name {
		if p.IsOperator() {
			return coded.New(ledger.CodeForbidden, "only a contributor sets its own payout profile")
		}
		return coded.Errorf(payout.CodeProfileNotFound, "no payout data of %s", c.QueryParam("owner"))
	}
	if p.Role != auth.RoleContributor {
		return coded.Errorf(ledger.CodeForbidden, "payout profiles are for contributors; %s's token is for the %s role", p.Name, p.Role)
	}
	var req payout.ProfileRequest
	if err := decodeJSON(c.Request().Body, &req, false); err != nil {
		return err
	}
	prof, err := s.deps.Payouts.SetProfile(c.Request().Context(), p.Name, req)
	if err != nil {
		return payoutError(err, "set payout profile of "+p.Name)
	}
	return c.JSON(http.StatusOK, prof)
}

// listPayouts lists the caller's payouts, newest first (operators: ?owner=).
func (s *Server) listPayouts(c echo.Context) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	owner, err := payoutOwner(c, p, CodeNotFound)
	if err != nil {
		return err
	}
	n, err := intQuery(c, "limit", 100, 1, 1000)
	if err != nil {
		return err
	}
	ps, err := s.deps.Payouts.Payouts(c.Request().Context(), owner, int(n))
	if err != nil {
		return payoutError(err, "payouts of "+owner)
	}
	if ps == nil {
		ps = []payout.Payout{}
	}
	return c.JSON(http.StatusOK, PayoutsReply{Payouts: ps})
}

// runPayouts (operators) makes the payouts of a period, or returns its
// complete run: a period is paid once.
func (s *Server) runPayouts(c echo.Context) error {
	p, err := operatorOnly(c, "start payout runs")
	if err != nil {
		return err
	}
	var req PayoutRunRequest
	if err := decodeJSON(c.Request().Body, &req, false); err != nil {
		return err
	}
	period, err := payout.ParsePeriod(req.Period)
	if err != nil {
		return err
	}
	r, err := s.deps.Payouts.Run(c.Request().Context(), period, p.Name)
	if err != nil {
		return payoutError(err, "payout run "+period.String())
	}
	return c.JSON(http.StatusOK, r)
}

func (s *Server) listPayoutRuns(c echo.Context) error {
	if _, err := operatorOnly(c, "list payout runs"); err != nil {
		return err
	}
	n, err := intQuery(c, "limit", 24, 1, 1000)
	if err != nil {
		return err
	}
	rs, err := s.deps.Payouts.Runs(c.Request().Context(), int(n))
	if err != nil {
		return payoutError(err, "payout runs")
	}
	if rs == nil {
		rs = []payout.Run{}
	}
	return c.JSON(http.StatusOK, PayoutRunsReply{Runs: rs})
}

func (s *Server) getPayoutRun(c echo.Context) error {
	if _, err := operatorOnly(c, "read payout runs"); err != nil {
		return err
	}
	period, err := periodParam(c)
	if err != nil {
		return err
	}
	r, err := s.deps.Payouts.RunOf(c.Request().Context(), period)
	if err != nil {
		return payoutError(err, "payout run "+period.String())
	}
	return c.JSON(http.StatusOK, r)
}

// payoutBatch serves a complete run's batch file: CSV or pain.001 XML, the
// same bytes as the files the rail wrote.
func (s *Server) payoutBatch(c echo.Context) error {
	if _, err := operatorOnly(c, "read payout batch files"); err != nil {
		return err
	}
	period, err := periodParam(c)
	if err != nil {
		return err
	}
	b, err := s.deps.Payouts.Batch(c.Request().Context(), period)
	if err != nil {
		return payoutError(err, "payout batch "+period.String())
	}
	var buf bytes.Buffer
	ctype, ext := "text/csv; charset=utf-8", ".csv"
	if c.Path() == "/api/payouts/runs/:period/batch.xml" {
		ctype, ext = "application/xml; charset=utf-8", ".xml"
		err = payout.WritePain001(&buf, b)
	} else {
		err = payout.WriteCSV(&buf, b)
	}
	if err != nil {
		return fmt.Errorf("api: payout batch %s: %w", period, err)
	}
	c.Response().Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s%s"`, b.Name(), ext))
	return c.Blob(http.StatusOK, ctype, buf.Bytes())
}

func (s *Server) listWithholds(c echo.Context) error {
	if _, err := operatorOnly(c, "list withholds"); err != nil {
		return err
	}
	all := c.QueryParam("all")
	if all != "" && all != "true" && all != "false" {
		return badf("all: want true or false, got %q", all)
	}
	ws, err := s.deps.Payouts.Withholds(c.Request().Context(), all == "true")
	if err != nil {
		return payoutError(err, "withholds")
	}
	if ws == nil {
		ws = []payout.Withhold{}
	}
	return c.JSON(http.StatusOK, WithholdsReply{Withholds: ws})
}

func (s *Server) addWithhold(c echo.Context) error {
	p, err := operatorOnly(c, "withhold payouts")
	if err != nil {
		return err
	}
	var req WithholdRequest
	if err := decodeJSON(c.Request().Body, &req, false); err != nil {
		return err
	}
	var period payout.Period
	if req.Period != "" {
		if period, err = payout.ParsePeriod(req.Period); err != nil {
			return err
		}
	}
	w, err := s.deps.Payouts.AddWithhold(c.Request().Context(), req.Owner, period, req.Reason, p.Name)
	if err != nil {
		return payoutError(err, "withhold payouts of "+req.Owner)
	}
	return c.JSON(http.StatusCreated, w)
}

func (s *Server) releaseWithhold(c echo.Context) error {
	p, err := operatorOnly(c, "release withholds")
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return badf("withhold id %q: want a positive integer", c.Param("id"))
	}
	w, err := s.deps.Payouts.ReleaseWithhold(c.Request().Context(), id, p.Name)
	if err != nil {
		return payoutError(err, fmt.Sprintf("release withhold %d", id))
	}
	return c.JSON(http.StatusOK, w)
}

// payoutError passes coded errors through and wraps the others.
func payoutError(err error, what string) error {
	if _, ok := coded.As(err); ok {
		return err
	}
	return fmt.Errorf("api: %s: %w", what, err)
}
