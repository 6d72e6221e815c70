// Package client is a Go client for the hub's REST API (package api). Its
// methods mirror the routes and return the ledger's own types. Errors the
// API reports are *Error, which wraps the reply's *coded.Error, so
// coded.CodeOf(err) and coded.As(err) work on them; *Error adds the HTTP
// status, the request ID and, for 429, how long to wait.
//
// The client does not retry by default. Writes carry client-chosen IDs, so
// retrying one after a timeout, a 503 or a network error is safe: send the
// same transfer again and the hub answers "existed" if it committed.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/coded"
)

// DefaultTimeout bounds each request unless WithTimeout or
// WithHTTPClient says otherwise. It is longer than the hub's own request
// timeout (api.DefaultConfig), so the hub's answer arrives first.
const DefaultTimeout = 45 * time.Second

// Client calls one hub. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	baseErr   error
	token     string
	hc        *http.Client
	retries   int           // retries of 429 replies
	maxWait   time.Duration // longest Retry-After honoured
	userAgent string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient uses hc (its Timeout applies) instead of a default client.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithTimeout sets the per-request timeout (0 = none; contexts still apply).
func WithTimeout(d time.Duration) Option {
	return func(c *Client) {
		hc := *c.hc
		hc.Timeout = d
		c.hc = &hc
	}
}

// WithRateLimitRetries retries a request answered 429 up to n times, each
// after the reply's Retry-After (at most maxWait; a longer wait returns the
// error instead). Every request is safe to repeat after a 429: the hub did
// not process it.
func WithRateLimitRetries(n int, maxWait time.Duration) Option {
	return func(c *Client) { c.retries, c.maxWait = n, maxWait }
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client for the hub at addr (e.g. "http://127.0.0.1:7070";
// "host:port" means http) authenticating with token ("" for none). A
// malformed addr is reported by every call.
func New(addr, token string, opts ...Option) *Client {
	c := &Client{token: token, hc: &http.Client{Timeout: DefaultTimeout}, userAgent: "spice"}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(strings.TrimRight(addr, "/"))
	switch {
	case err != nil:
		c.baseErr = fmt.Errorf("client: address %q: %w", addr, err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		c.baseErr = fmt.Errorf("client: address %q: want http(s)://host:port", addr)
	}
	c.base = u
	for _, o := range opts {
		o(c)
	}
	return c
}

// Address is the hub's base URL.
func (c *Client) Address() string {
	if c.base == nil {
		return ""
	}
	return c.base.String()
}

// Error is an error reply of the API.
type Error struct {
	Status     int           // HTTP status
	RequestID  string        // the hub logs the request under this ID
	RetryAfter time.Duration // from Retry-After (429, 503), else 0
	Err        *coded.Error  // code and message
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s: %s", e.Err.Code, e.Err.Message)
	if e.Err.Code == api.CodeInternal && e.RequestID != "" {
		s += " (request ID " + e.RequestID + ")"
	}
	return s
}

// Unwrap returns the coded error.
func (e *Error) Unwrap() error { return e.Err }

// StatusOf returns the HTTP status of an API error, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// RetryAfterOf returns how long an API error asks to wait, or 0.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// do sends a request with body (JSON-encoded unless nil) and decodes a
// 2xx reply into out (unless nil or the reply is empty); an out of type
// *[]byte receives the reply's bytes as they are.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) (status int, err error) {
	if c.baseErr != nil {
		return 0, c.baseErr
	}
	var data []byte
	if body != nil {
		if data, err = json.Marshal(body); err != nil {
			return 0, fmt.Errorf("client: %s %s: encode: %w", method, path, err)
		}
	}
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	for attempt := 0; ; attempt++ {
		status, err = c.once(ctx, method, u.String(), data, body != nil, out)
		var e *Error
		if attempt >= c.retries || !errors.As(err, &e) || e.Status != http.StatusTooManyRequests || e.RetryAfter > c.maxWait {
			return status, err
		}
		t := time.NewTimer(max(e.RetryAfter, 100*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return status, err
		case <-t.C:
		}
	}
}

func (c *Client) once(ctx context.Context, method, u string, data []byte, hasBody bool, out any) (int, error) {
	var r io.Reader
	if hasBody {
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return 0, fmt.Errorf("client: %w", err)
	}
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("client: %s %s: %w", method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	// Replies are small except account transfer lists and batch results;
	// 64 MiB bounds a broken or hostile server.
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("client: %s %s: read reply: %w", method, req.URL.Path, err)
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, replyError(resp, b)
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = b // a document (HTML, PDF), not JSON
		return resp.StatusCode, nil
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("client: %s %s: decode reply: %w", method, req.URL.Path, err)
		}
	}
	return resp.StatusCode, nil
}

// replyError decodes an error reply; a reply that is not the API's JSON
// (a proxy's HTML page) becomes a coded error named after the status.
func replyError(resp *http.Response, body []byte) *Error {
	e := &Error{Status: resp.StatusCode, RequestID: resp.Header.Get(api.HeaderRequestID)}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	var r api.ErrorReply
	if err := json.Unmarshal(body, &r); err == nil && r.Error.Code != "" {
		e.Err = coded.New(r.Error.Code, r.Error.Message)
		if r.Error.RequestID != "" {
			e.RequestID = r.Error.RequestID
		}
		return e
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	e.Err = coded.Errorf(codeOfStatus(resp.StatusCode), "HTTP %d: %s", resp.StatusCode, msg)
	return e
}

func codeOfStatus(status int) coded.Code {
	switch status {
	case http.StatusUnauthorized:
		return api.CodeUnauthenticated
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return api.CodeNotFound
	case http.StatusRequestEntityTooLarge:
		return api.CodeBodyTooLarge
	case http.StatusTooManyRequests:
		return api.CodeRateLimited
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return "unavailable"
	}
	if status >= 500 {
		return api.CodeInternal
	}
	return api.CodeBadRequest
}
