package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
)

// PriceStore keeps the hub's unit prices and their history
// (*postgres.Store). Safe for concurrent use.
type PriceStore interface {
	Prices(ctx context.Context) (market.Prices, error)
	SetPrices(ctx context.Context, p market.Prices, by string) error
	PriceHistory(ctx context.Context, limit int) ([]market.PriceChange, error)
}

// PricesReply is GET /api/prices: the prices in force (µSP per
// resource-hour) and, with ?history=N, the N newest changes.
type PricesReply struct {
	Prices  market.Prices        `json:"prices"`
	History []market.PriceChange `json:"history,omitempty"`
}

func (s *Server) registerPrices(g *echo.Group, limit echo.MiddlewareFunc) {
	g.GET("/prices", s.getPrices)
	g.PUT("/prices", s.setPrices, limit)
}

// getPrices is public: renters see prices before they have a token.
func (s *Server) getPrices(c echo.Context) error {
	ctx := c.Request().Context()
	p, err := s.deps.Prices.Prices(ctx)
	if err != nil {
		return fmt.Errorf("api: prices: %w", err)
	}
	reply := PricesReply{Prices: p}
	n, err := intQuery(c, "history", 0, 0, 1000)
	if err != nil {
		return err
	}
	if n > 0 {
		if reply.History, err = s.deps.Prices.PriceHistory(ctx, int(n)); err != nil {
			return fmt.Errorf("api: price history: %w", err)
		}
	}
	return c.JSON(http.StatusOK, reply)
}

// setPrices (operators only) puts new prices in force. Every field is
// required: a price left out would silently become zero.
func (s *Server) setPrices(c echo.Context) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	if !p.IsOperator() {
		return coded.New(ledger.CodeForbidden, "only an operator may set prices")
	}
	var body struct {
		CPU    *ledger.Amount `json:"cpu_core_hour"`
		Memory *ledger.Amount `json:"memory_gib_hour"`
		Disk   *ledger.Amount `json:"disk_gib_hour"`
	}
	if err := decodeJSON(c.Request().Body, &body, false); err != nil {
		return err
	}
	if body.CPU == nil || body.Memory == nil || body.Disk == nil {
		return badf("cpu_core_hour, memory_gib_hour and disk_gib_hour are all required (µSP per resource-hour)")
	}
	prices := market.Prices{CPU: *body.CPU, Memory: *body.Memory, Disk: *body.Disk}
	if err := s.deps.Prices.SetPrices(c.Request().Context(), prices, p.Name); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, PricesReply{Prices: prices})
}
