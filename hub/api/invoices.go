package api

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/invoice"
)

// InvoiceStore keeps issued invoices and statements (*postgres.Store).
// Invoice returns a coded "invoice_not_found" error for unknown numbers.
type InvoiceStore interface {
	Invoice(ctx context.Context, number int64) (*invoice.Invoice, error)
}

func (s *Server) registerInvoices(g *echo.Group) {
	g.GET("/invoices/:number", s.getInvoice)
}

// getInvoice serves an invoice as JSON (default), HTML (?format=html or
// Accept: text/html) or PDF (?format=pdf or Accept: application/pdf). Only
// its party and operators may read it; others get 404, as for a number
// that does not exist.
func (s *Server) getInvoice(c echo.Context) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	n, err := strconv.ParseInt(c.Param("number"), 10, 64)
	if err != nil || n <= 0 {
		return badf("invoice number %q: want a positive integer", c.Param("number"))
	}
	inv, err := s.deps.Invoices.Invoice(c.Request().Context(), n)
	if err != nil {
		return err
	}
	if !p.IsOperator() && inv.Party != p.Name {
		return coded.Errorf("invoice_not_found", "invoice %d not found", n)
	}
	format := c.QueryParam("format")
	if format == "" {
		switch c.Request().Header.Get("Accept") {
		case "application/pdf":
			format = "pdf"
		case "text/html":
			format = "html"
		}
	}
	var buf bytes.Buffer
	switch format {
	case "", "json":
		return c.JSON(http.StatusOK, inv)
	case "html":
		if err := inv.HTML(&buf); err != nil {
			return fmt.Errorf("api: invoice %d: %w", n, err)
		}
		return c.Blob(http.StatusOK, "text/html; charset=utf-8", buf.Bytes())
	case "pdf":
		if err := inv.PDF(&buf); err != nil {
			return fmt.Errorf("api: invoice %d: %w", n, err)
		}
		c.Response().Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%d.pdf"`, inv.Kind, n))
		return c.Blob(http.StatusOK, "application/pdf", buf.Bytes())
	}
	return badf("format %q: want json, html or pdf", format)
}
