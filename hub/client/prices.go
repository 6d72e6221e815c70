package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/market"
)

// Prices returns the hub-wide unit prices and up to history past changes.
func (c *Client) Prices(ctx context.Context, history int) (api.PricesReply, error) {
	return c.PricesIn(ctx, "", history)
}

// PricesIn returns the unit prices in force in region ("" the whole hub)
// and up to history of the region's past changes.
func (c *Client) PricesIn(ctx context.Context, region string, history int) (api.PricesReply, error) {
	q := url.Values{}
	if region != "" {
		q.Set("region", region)
	}
	if history > 0 {
		q.Set("history", strconv.Itoa(history))
	}
	var r api.PricesReply
	_, err := c.do(ctx, http.MethodGet, "/api/prices", q, nil, &r)
	return r, err
}

// PriceHistory returns up to limit price changes of region ("" the
// hub-wide prices, market.AllRegions every region's), newest first; limit
// 0 is the hub's default (api.DefaultPriceHistory). A change the market
// made carries the utilization, demand and capacity that moved it.
func (c *Client) PriceHistory(ctx context.Context, region string, limit int) ([]market.PriceChange, error) {
	q := url.Values{}
	if region != market.AllRegions {
		q.Set("region", region)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var r api.PriceHistoryReply
	if _, err := c.do(ctx, http.MethodGet, "/api/prices/history", q, nil, &r); err != nil {
		return nil, err
	}
	return r.History, nil
}

// SetPrices puts new hub-wide unit prices in force (operators only).
func (c *Client) SetPrices(ctx context.Context, p market.Prices) (api.PricesReply, error) {
	return c.SetPricesIn(ctx, "", p)
}

// SetPricesIn puts new unit prices in force in region ("" the whole hub;
// operators only). They are the region's base price: the market moves the
// price from there.
func (c *Client) SetPricesIn(ctx context.Context, region string, p market.Prices) (api.PricesReply, error) {
	body := struct {
		market.Prices
		Region string `json:"region,omitempty"`
	}{p, region}
	var r api.PricesReply
	_, err := c.do(ctx, http.MethodPut, "/api/prices", nil, body, &r)
	return r, err
}
