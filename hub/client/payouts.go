package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/payout"
)

// PayoutProfile returns the payout profile of owner ("" = the caller;
// another's only for operators).
func (c *Client) PayoutProfile(ctx context.Context, owner string) (payout.Profile, error) {
	var p payout.Profile
	_, err := c.do(ctx, http.MethodGet, "/api/payouts/profile", ownerQuery(owner), nil, &p)
	return p, err
}

// SetPayoutProfile sets the caller's payout profile (contributors).
func (c *Client) SetPayoutProfile(ctx context.Context, r payout.ProfileRequest) (payout.Profile, error) {
	var p payout.Profile
	_, err := c.do(ctx, http.MethodPut, "/api/payouts/profile", nil, r, &p)
	return p, err
}

// Payouts returns up to limit payouts of owner ("" = the caller), newest
// first (limit 0 = the hub's default).
func (c *Client) Payouts(ctx context.Context, owner string, limit int) ([]payout.Payout, error) {
	q := ownerQuery(owner)
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var r api.PayoutsReply
	_, err := c.do(ctx, http.MethodGet, "/api/payouts", q, nil, &r)
	return r.Payouts, err
}

// RunPayouts pays a period's payouts ("2026-11"), or returns its complete
// run (operators only).
func (c *Client) RunPayouts(ctx context.Context, period string) (*payout.Run, error) {
	var r payout.Run
	if _, err := c.do(ctx, http.MethodPost, "/api/payouts/runs", nil, api.PayoutRunRequest{Period: period}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// PayoutRuns lists up to limit runs, newest first (operators only).
func (c *Client) PayoutRuns(ctx context.Context, limit int) ([]payout.Run, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var r api.PayoutRunsReply
	_, err := c.do(ctx, http.MethodGet, "/api/payouts/runs", q, nil, &r)
	return r.Runs, err
}

// PayoutRun returns a period's run with its payouts (operators only).
func (c *Client) PayoutRun(ctx context.Context, period string) (*payout.Run, error) {
	var r payout.Run
	if _, err := c.do(ctx, http.MethodGet, "/api/payouts/runs/"+url.PathEscape(period), nil, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// PayoutBatch returns a complete run's batch file, format "csv" or "xml"
// (ISO 20022 pain.001) (operators only).
func (c *Client) PayoutBatch(ctx context.Context, period, format string) ([]byte, error) {
	var b []byte
	_, err := c.do(ctx, http.MethodGet, "/api/payouts/runs/"+url.PathEscape(period)+"/batch."+url.PathEscape(format), nil, nil, &b)
	return b, err
}

// Withhold withholds owner's payouts in period ("" = every period until
// released) (operators only).
func (c *Client) Withhold(ctx context.Context, owner, period, reason string) (payout.Withhold, error) {
	var w payout.Withhold
	_, err := c.do(ctx, http.MethodPost, "/api/payouts/withholds", nil, api.WithholdRequest{Owner: owner, Period: period, Reason: reason}, &w)
	return w, err
}

// ReleaseWithhold releases withhold id (operators only).
func (c *Client) ReleaseWithhold(ctx context.Context, id int64) (payout.Withhold, error) {
	var w payout.Withhold
	_, err := c.do(ctx, http.MethodPost, "/api/payouts/withholds/"+strconv.FormatInt(id, 10)+"/release", nil, nil, &w)
	return w, err
}

// Withholds lists the active withholds, or all (operators only).
func (c *Client) Withholds(ctx context.Context, all bool) ([]payout.Withhold, error) {
	q := url.Values{}
	if all {
		q.Set("all", "true")
	}
	var r api.WithholdsReply
	_, err := c.do(ctx, http.MethodGet, "/api/payouts/withholds", q, nil, &r)
	return r.Withholds, err
}

func ownerQuery(owner string) url.Values {
	q := url.Values{}
	if owner != "" {
		q.Set("owner", owner)
	}
	return q
}
