package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/invoice"
)

// Invoice returns invoice (or statement) number n.
func (c *Client) Invoice(ctx context.Context, n int64) (*invoice.Invoice, error) {
	var inv invoice.Invoice
	if _, err := c.do(ctx, http.MethodGet, "/api/invoices/"+strconv.FormatInt(n, 10), nil, nil, &inv); err != nil {
		return nil, err
	}
	return &inv, nil
}

// InvoiceDocument returns invoice n rendered as "html" or "pdf".
func (c *Client) InvoiceDocument(ctx context.Context, n int64, format string) ([]byte, error) {
	var b []byte
	_, err := c.do(ctx, http.MethodGet, "/api/invoices/"+strconv.FormatInt(n, 10), url.Values{"format": {format}}, nil, &b)
	return b, err
}

// IssueStatement asks for the statement of what contributor ("" for the
// caller) earned in [from, to); the hub issues it once per contributor and
// period, and returns the same one when asked again.
func (c *Client) IssueStatement(ctx context.Context, contributor string, from, to time.Time) (*invoice.Invoice, error) {
	var inv invoice.Invoice
	if _, err := c.do(ctx, http.MethodPost, "/api/statements", nil, api.StatementRequest{Contributor: contributor, From: from, To: to}, &inv); err != nil {
		return nil, err
	}
	return &inv, nil
}
