package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/spiceroute/spiceroute/hub/api"
)

// Enrol (operators only) issues a single-use enrolment token for owner's
// next machine; ttl is a Go duration ("24h"; "" for the hub's default). The
// token is shown once: hand it to the contributor for `spice agent join`.
func (c *Client) Enrol(ctx context.Context, owner, ttl string) (*api.EnrolmentReply, error) {
	var r api.EnrolmentReply
	if _, err := c.do(ctx, http.MethodPost, "/api/enrolments", nil, api.EnrolmentRequest{Owner: owner, TTL: ttl}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Machines lists the caller's machines with their reputation; operators
// see every machine, or owner's when owner is not "".
func (c *Client) Machines(ctx context.Context, owner string) ([]api.MachineReply, error) {
	q := url.Values{}
	if owner != "" {
		q.Set("owner", owner)
	}
	var r struct {
		Machines []api.MachineReply `json:"machines"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/api/machines", q, nil, &r); err != nil {
		return nil, err
	}
	return r.Machines, nil
}

// Machine returns one of the caller's machines (any, for operators).
func (c *Client) Machine(ctx context.Context, id string) (*api.MachineReply, error) {
	var r api.MachineReply
	if _, err := c.do(ctx, http.MethodGet, "/api/machines/"+url.PathEscape(id), nil, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
