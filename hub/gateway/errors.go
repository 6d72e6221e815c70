package gateway

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/jobs"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
)

// headerRequestID is where the hub's API puts the request's ID (on the
// response, before the gateway runs).
const headerRequestID = "X-Request-ID"

// fail answers an error: the one place the gateway turns errors into
// statuses. The gateway speaks Nomad's protocol (plain-text errors), not
// the hub API's JSON one, and its statuses for payment problems differ
// from the API's (402 here, 422 there), so it has its own table.
func (g *Gateway) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg, internal := describe(err)
	switch {
	case internal:
		rid := w.Header().Get(headerRequestID)
		g.log.ErrorContext(r.Context(), "gateway: internal error", "err", err, "method", r.Method, "path", r.URL.Path, "request_id", rid)
		msg = "internal error (request ID " + rid + ")"
	case status >= 500:
		g.log.WarnContext(r.Context(), "gateway: nomad", "err", err, "method", r.Method, "path", r.URL.Path)
	}
	g.text(w, status, msg)
}

// describe is the status and message of an error, and whether it is
// internal (a bug or an outage to log in full, shown as "internal error").
func describe(err error) (status int, msg string, internal bool) {
	if e, ok := coded.As(err); ok {
		return statusOf(e.Code), e.Message, false
	}
	// Nomad answered, refusing what the renter sent: a job it finds
	// invalid is a 500 from Nomad ("1 error occurred: ..."), as the stock
	// CLI would show it talking to Nomad itself. Its words are the renter's
	// to read. A refused token is the hub's problem, not the renter's.
	var ure api.UnexpectedResponseError
	if errors.As(err, &ure) && ure.StatusCode() >= 400 &&
		ure.StatusCode() != http.StatusUnauthorized && ure.StatusCode() != http.StatusForbidden {
		return ure.StatusCode(), strings.TrimSpace(ure.Body()), false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return http.StatusGatewayTimeout, "Nomad did not answer in time; try again", false
	}
	if errors.Is(err, context.Canceled) {
		return http.StatusBadGateway, "the request was canceled", false
	}
	var ne net.Error
	var se *statusError
	if errors.As(err, &ne) || errors.As(err, &se) || errors.As(err, &ure) {
		return http.StatusBadGateway, "the hub cannot reach its Nomad cluster right now; try again later", false
	}
	return http.StatusInternalServerError, "internal error", true
}

// statusOf is the HTTP status of a coded error on the gateway.
func statusOf(code coded.Code) int {
	switch code {
	case ledger.CodeInsufficientFunds, market.CodeOverMaxPrice, jobs.CodeNoAccount:
		return http.StatusPaymentRequired
	case ledger.CodeForbidden:
		return http.StatusForbidden
	case ledger.CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	if strings.HasSuffix(string(code), "_not_found") {
		return http.StatusNotFound
	}
	// policy_violation, invalid, invalid_price, ...: the job cannot be
	// admitted as it is; the message says why.
	return http.StatusBadRequest
}
