package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/spiceroute/spiceroute/agent/agentapi"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
)

// PriceStore keeps the hub's unit prices per region and their history
// (*postgres.Store). Region "" is the whole hub; a region without prices
// of its own has the hub-wide ones. Safe for concurrent use.
type PriceStore interface {
	PricesIn(ctx context.Context, region string) (market.Prices, error)
	// SetPricesIn puts an operator's prices in force: the region's new
	// base price, which the market moves from.
	SetPricesIn(ctx context.Context, region string, p market.Prices, by string) error
	// PriceHistoryIn lists region's changes (market.AllRegions: every
	// region's), newest first.
	PriceHistoryIn(ctx context.Context, region string, limit int) ([]market.PriceChange, error)
}

// PricesReply is GET /api/prices: the prices in force in a region (µSP
// per resource-hour; region "" is the whole hub) and, with ?history=N, the
// region's N newest changes.
type PricesReply struct {
	Region  string               `json:"region"`
	Prices  market.Prices        `json:"prices"`
	History []market.PriceChange `json:"history,omitempty"`
}

// PriceHistoryReply is GET /api/prices/history: price changes, newest
// first. A change the market made carries the load that moved it.
type PriceHistoryReply struct {
	History []market.PriceChange `json:"history"`
}

// Limits of the price history.
const (
	DefaultPriceHistory = 50
	MaxPriceHistory     = 1000
)

// registerPrices adds the price routes:
//
//	GET /api/prices                 the prices in force (?region=, default the whole hub; ?history=N)
//	GET /api/prices/history         changes, newest first, with what moved them
//	                                (?region=: one region, "" the hub-wide prices; none: every region;
//	                                ?limit=, default 50, max 1000)
//	PUT /api/prices                 {"cpu_core_hour", "memory_gib_hour", "disk_gib_hour", "region"}
//	                                (operators only): the region's new base price, in force at once
//
// The GET routes are public: renters see prices before they have a token.
func (s *Server) registerPrices(g *echo.Group, limit echo.MiddlewareFunc) {
	g.GET("/prices", s.getPrices)
	g.GET("/prices/history", s.priceHistory)
	g.PUT("/prices", s.setPrices, limit)
}

// regionQuery is the ?region= parameter ("" when absent) and whether it
// was given.
func regionQuery(c echo.Context) (string, bool, error) {
	vs, ok := c.QueryParams()["region"]
	if !ok {
		return "", false, nil
	}
	r := vs[0]
	if r != "" {
		if err := agentapi.ValidRegion(r); err != nil {
			return "", true, badf("%v", err)
		}
	}
	return r, true, nil
}

func (s *Server) getPrices(c echo.Context) error {
	ctx := c.Request().Context()
	region, _, err := regionQuery(c)
	if err != nil {
		return err
	}
	p, err := s.deps.Prices.PricesIn(ctx, region)
	if err != nil {
		return fmt.Errorf("api: prices: %w", err)
	}
	reply := PricesReply{Region: region, Prices: p}
	n, err := intQuery(c, "history", 0, 0, MaxPriceHistory)
	if err != nil {
		return err
	}
	if n > 0 {
		if reply.History, err = s.deps.Prices.PriceHistoryIn(ctx, region, int(n)); err != nil {
			return fmt.Errorf("api: price history: %w", err)
		}
	}
	return c.JSON(http.StatusOK, reply)
}

func (s *Server) priceHistory(c echo.Context) error {
	region, given, err := regionQuery(c)
	if err != nil {
		return err
	}
	if !given {
		region = market.AllRegions
	}
	n, err := intQuery(c, "limit", DefaultPriceHistory, 1, MaxPriceHistory)
	if err != nil {
		return err
	}
	h, err := s.deps.Prices.PriceHistoryIn(c.Request().Context(), region, int(n))
	if err != nil {
		return fmt.Errorf("api: price history: %w", err)
	}
	if h == nil {
		h = []market.PriceChange{}
	}
	return c.JSON(http.StatusOK, PriceHistoryReply{History: h})
}

// setPrices (operators only) puts new prices in force in a region (the
// whole hub without one). Every price is required: a price left out would
// silently become zero. They are the region's base: the market moves the
// price from there, between the bounds the hub derives from it.
func (s *Server) setPrices(c echo.Context) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	if !p.IsOperator() {
		return coded.New(ledger.CodeForbidden, "only an operator may set prices")
	}
	if p.Name == market.SetByMarket {
		return coded.Errorf(ledger.CodeForbidden, "%q is the market's name in the price history; set prices as another operator", p.Name)
	}
	var body struct {
		CPU    *ledger.Amount `json:"cpu_core_hour"`
		Memory *ledger.Amount `json:"memory_gib_hour"`
		Disk   *ledger.Amount `json:"disk_gib_hour"`
		Region string         `json:"region"`
	}
	if err := decodeJSON(c.Request().Body, &body, false); err != nil {
		return err
	}
	if body.CPU == nil || body.Memory == nil || body.Disk == nil {
		return badf("cpu_core_hour, memory_gib_hour and disk_gib_hour are all required (µSP per resource-hour)")
	}
	if body.Region != "" {
		if err := agentapi.ValidRegion(body.Region); err != nil {
			return badf("%v", err)
		}
	}
	prices := market.Prices{CPU: *body.CPU, Memory: *body.Memory, Disk: *body.Disk}
	if err := s.deps.Prices.SetPricesIn(c.Request().Context(), body.Region, prices, p.Name); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, PricesReply{Region: body.Region, Prices: prices})
}
