package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/spiceroute/spiceroute/hub/admission"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/contrib"
	"github.com/spiceroute/spiceroute/hub/jobs"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
)

// Codes the API itself returns, beside the ledger's (ledger/errors.go).
const (
	CodeBadRequest       coded.Code = "bad_request"        // malformed request: JSON, parameters; the message says what
	CodeUnauthenticated  coded.Code = "unauthenticated"    // no, unknown or revoked token
	CodeNotFound         coded.Code = "not_found"          // no such route or object
	CodeAccountNotFound  coded.Code = "account_not_found"  // no such account (or not yours)
	CodeTransferNotFound coded.Code = "transfer_not_found" // no such transfer (or not yours)
	CodeMethodNotAllowed coded.Code = "method_not_allowed" // the route exists for other methods
	CodeBodyTooLarge     coded.Code = "body_too_large"     // the request body is over the limit
	CodeRateLimited      coded.Code = "rate_limited"       // over the rate limit; see Retry-After
	CodeNotPublished     coded.Code = "not_published"      // not yet in a signed checkpoint; retry shortly
	CodeInternal         coded.Code = "internal"           // a bug or an outage; logged under the request ID
)

// statuses maps every known code to its HTTP status. It is the only place
// codes become statuses; Status applies it.
var statuses = map[coded.Code]int{
	ledger.CodeInvalid:       http.StatusBadRequest,
	ledger.CodeIDZero:        http.StatusBadRequest,
	ledger.CodeAmountInvalid: http.StatusBadRequest,
	ledger.CodeSameAccount:   http.StatusBadRequest,
	CodeBadRequest:           http.StatusBadRequest,

	CodeUnauthenticated:  http.StatusUnauthorized,
	ledger.CodeForbidden: http.StatusForbidden,
	jobs.CodeNoAccount:   http.StatusForbidden, // a renter with no account to pay from
	// An enrolment token that is unknown, used or expired.
	contrib.CodeEnrolmentInvalid: http.StatusForbidden,

	CodeNotFound:               http.StatusNotFound,
	ledger.CodeAccountNotFound: http.StatusNotFound,
	CodeTransferNotFound:       http.StatusNotFound,
	ledger.CodePendingNotFound: http.StatusNotFound,
	jobs.CodeJobNotFound:       http.StatusNotFound,

	CodeMethodNotAllowed:         http.StatusMethodNotAllowed,
	ledger.CodeIDConflict:        http.StatusConflict,
	jobs.CodeAdmissionConflict:   http.StatusConflict,
	CodeBodyTooLarge:             http.StatusRequestEntityTooLarge,
	ledger.CodeBatchTooLarge:     http.StatusRequestEntityTooLarge,
	ledger.CodeAccountClosed:     http.StatusUnprocessableEntity,
	ledger.CodeOverflow:          http.StatusUnprocessableEntity,
	ledger.CodeInsufficientFunds: http.StatusUnprocessableEntity,
	ledger.CodePendingNotPending: http.StatusUnprocessableEntity,
	ledger.CodePendingMismatch:   http.StatusUnprocessableEntity,
	ledger.CodeHoldAlreadyPosted: http.StatusUnprocessableEntity,
	ledger.CodeHoldAlreadyVoided: http.StatusUnprocessableEntity,
	ledger.CodeHoldExpired:       http.StatusUnprocessableEntity,
	ledger.CodeExceedsPending:    http.StatusUnprocessableEntity,
	ledger.CodeLinkedEventFailed: http.StatusUnprocessableEntity,
	ledger.CodeLinkedChainOpen:   http.StatusUnprocessableEntity,
	// A job the hub refuses to run, like a transfer the ledger refuses: a
	// well-formed request that breaks a rule (insufficient_funds above too).
	admission.CodeViolation: http.StatusUnprocessableEntity,
	market.CodeOverMaxPrice: http.StatusUnprocessableEntity,

	CodeRateLimited:        http.StatusTooManyRequests,
	CodeInternal:           http.StatusInternalServerError,
	ledger.CodeUnavailable: http.StatusServiceUnavailable,
	CodeNotPublished:       http.StatusServiceUnavailable,
}

// Status is the HTTP status of an error code. Codes not in the table follow
// their family (…_not_found → 404; hold_…, pending_…, linked_… → 422);
// anything else is 400.
func Status(code coded.Code) int {
	if s, ok := statuses[code]; ok {
		return s
	}
	c := string(code)
	switch {
	case strings.HasSuffix(c, "_not_found"):
		return http.StatusNotFound
	case strings.HasPrefix(c, "hold_"), strings.HasPrefix(c, "pending_"), strings.HasPrefix(c, "linked_"):
		return http.StatusUnprocessableEntity
	}
	return http.StatusBadRequest
}

// codeOfStatus names echo's own HTTP errors (unknown route, wrong method,
// body over echo's limits) and other status-only errors.
func codeOfStatus(status int) coded.Code {
	switch status {
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusMethodNotAllowed:
		return CodeMethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		return CodeBodyTooLarge
	case http.StatusUnauthorized:
		return CodeUnauthenticated
	case http.StatusForbidden:
		return ledger.CodeForbidden
	case http.StatusTooManyRequests:
		return CodeRateLimited
	case http.StatusServiceUnavailable:
		return ledger.CodeUnavailable
	}
	if status >= 500 {
		return CodeInternal
	}
	return CodeBadRequest
}

// rateLimitedError is a 429 with its Retry-After.
type rateLimitedError struct {
	err        *coded.Error
	retryAfter int // seconds
}

func (e *rateLimitedError) Error() string { return e.err.Error() }
func (e *rateLimitedError) Unwrap() error { return e.err }

// toCoded turns any error into the coded error the user sees, and reports
// whether it was internal (to be logged in full).
func toCoded(err error) (ce *coded.Error, internal bool) {
	if e, ok := coded.As(err); ok {
		return e, false
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg := http.StatusText(he.Code)
		if s, ok := he.Message.(string); ok && s != "" {
			msg = s
		}
		code := codeOfStatus(he.Code)
		if code == CodeInternal {
			return coded.New(CodeInternal, "internal error"), true
		}
		return coded.New(code, strings.ToLower(msg)), false
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return coded.Errorf(CodeBodyTooLarge, "request body over the limit of %d bytes", mbe.Limit), false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return coded.New(ledger.CodeUnavailable, "the request timed out; a write may still commit, and retrying with the same IDs is safe"), false
	}
	if errors.Is(err, context.Canceled) {
		return coded.New(ledger.CodeUnavailable, "the request was canceled"), false
	}
	return coded.New(CodeInternal, "internal error"), true
}

// handleError is echo's HTTPErrorHandler: the one place errors become
// responses.
func (s *Server) handleError(err error, c echo.Context) {
	ce, internal := toCoded(err)
	rid := requestID(c)
	log := loggerOf(c, s.log)
	if internal {
		log.Error("api: internal error", "err", err, "method", c.Request().Method, "path", c.Request().URL.Path)
	}
	if c.Response().Committed {
		if !internal {
			log.Warn("api: error after the response was committed", "err", err)
		}
		return
	}
	status := Status(ce.Code)
	var rl *rateLimitedError
	if errors.As(err, &rl) {
		c.Response().Header().Set("Retry-After", strconv.Itoa(rl.retryAfter))
	}
	if ce.Code == CodeNotPublished {
		c.Response().Header().Set("Retry-After", "1")
	}
	if status == http.StatusUnauthorized {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="spiceroute"`)
	}
	reply := ErrorReply{Error: ErrorBody{Code: ce.Code, Message: ce.Message, RequestID: rid}}
	var werr error
	if c.Request().Method == http.MethodHead {
		werr = c.NoContent(status)
	} else {
		werr = c.JSON(status, reply)
	}
	if werr != nil {
		log.Warn("api: writing error reply", "err", werr)
	}
}
