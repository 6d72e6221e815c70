package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/market"
)

// Prices returns the hub's unit prices and up to history past changes.
func (c *Client) Prices(ctx context.Context, history int) (api.PricesReply, error) {
	var q url.Values
	if history > 0 {
		q = url.Values{"history": {strconv.Itoa(history)}}
	}
	var r api.PricesReply
	_, err := c.do(ctx, http.MethodGet, "/api/prices", q, nil, &r)
	return r, err
}

// SetPrices puts new unit prices in force (operators only).
func (c *Client) SetPrices(ctx context.Context, p market.Prices) (api.PricesReply, error) {
	var r api.PricesReply
	_, err := c.do(ctx, http.MethodPut, "/api/prices", nil, p, &r)
	return r, err
}
