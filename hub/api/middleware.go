package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
)

// Keys of values middleware stores on the echo.Context.
const (
	keyRequestID = "spiceroute.request_id"
	keyLogger    = "spiceroute.logger"
	keyPrincipal = "spiceroute.principal"
)

// HeaderRequestID carries the request ID, in and out.
const HeaderRequestID = "X-Request-ID"

func requestID(c echo.Context) string {
	id, _ := c.Get(keyRequestID).(string)
	return id
}

// loggerOf is the request's logger (with its request_id), or def.
func loggerOf(c echo.Context, def *slog.Logger) *slog.Logger {
	if l, ok := c.Get(keyLogger).(*slog.Logger); ok {
		return l
	}
	return def
}

// validRequestID accepts a client's X-Request-ID only if it is short and
// plain, so it cannot forge log lines.
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:", r)) {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// observe is the outermost middleware: it assigns the request ID, recovers
// panics, sends errors through the error handler (so the status is known
// here), then logs the request and records its metrics.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		start := time.Now()
		req := c.Request()
		rid := req.Header.Get(HeaderRequestID)
		if !validRequestID(rid) {
			rid = newRequestID()
		}
		c.Set(keyRequestID, rid)
		c.Response().Header().Set(HeaderRequestID, rid)
		log := s.log.With("request_id", rid)
		c.Set(keyLogger, log)

		func() {
			defer func() {
				if p := recover(); p != nil {
					if p == http.ErrAbortHandler {
						panic(p)
					}
					err = fmt.Errorf("api: panic: %v\n%s", p, debug.Stack())
				}
			}()
			err = next(c)
		}()
		if err != nil {
			c.Error(err)
			err = nil
		}

		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		status := c.Response().Status
		took := time.Since(start)
		s.metrics.observe(req.Method, route, status, took)
		attrs := []any{"method", req.Method, "path", req.URL.Path, "route", route, "status", status,
			"took", took.Round(time.Microsecond), "bytes", c.Response().Size, "ip", c.RealIP()}
		if p, ok := c.Get(keyPrincipal).(auth.Principal); ok {
			attrs = append(attrs, "principal", p.Name)
		}
		level := slog.LevelInfo
		if route == "/healthz" || route == "/metrics" {
			level = slog.LevelDebug
		}
		log.Log(req.Context(), level, "api: request", attrs...)
		return nil
	}
}

// timeout bounds the handler with Config.RequestTimeout.
func (s *Server) timeout(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.cfg.Unbounded != nil && s.cfg.Unbounded(c.Request()) {
			// No write deadline either (http.Server.WriteTimeout).
			_ = http.NewResponseController(c.Response().Writer).SetWriteDeadline(time.Time{})
			return next(c)
		}
		ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RequestTimeout)
		defer cancel()
		c.SetRequest(c.Request().WithContext(ctx))
		return next(c)
	}
}

// HeaderNomadToken carries the token of a Nomad client (the stock nomad
// CLI with NOMAD_TOKEN set): a SpiceRoute token, accepted like a bearer token.
const HeaderNomadToken = "X-Nomad-Token"

// authenticate resolves a bearer token to its principal and applies the
// rate limits: per token for valid tokens, per client IP for requests
// without a valid token. A request with an invalid token is refused (401)
// even on public routes, so that a client learns its token is bad.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		switch c.Path() {
		case "/healthz", "/metrics":
			return next(c)
		}
		now := time.Now()
		h := c.Request().Header.Get(echo.HeaderAuthorization)
		if t := c.Request().Header.Get(HeaderNomadToken); h == "" && t != "" {
			h = "Bearer " + t // the stock nomad CLI, pointed at the hub's /v1/ gateway
		}
		if h == "" {
			if err := s.limit(s.ips, ipKey(c.RealIP()), now); err != nil {
				return err
			}
			return next(c)
		}
		scheme, secret, ok := strings.Cut(h, " ")
		secret = strings.TrimSpace(secret)
		if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
			if err := s.limit(s.ips, ipKey(c.RealIP()), now); err != nil {
				return err
			}
			return coded.New(CodeUnauthenticated, `malformed Authorization header: want "Bearer <token>"`)
		}
		p, err := s.deps.Tokens.Authenticate(c.Request().Context(), secret)
		if err != nil {
			if lerr := s.limit(s.ips, ipKey(c.RealIP()), now); lerr != nil {
				return lerr
			}
			if coded.CodeOf(err) == CodeUnauthenticated {
				return err
			}
			return fmt.Errorf("api: authenticate: %w", err)
		}
		if !(p.IsOperator() && s.cfg.ExemptOperators) {
			hash := auth.HashToken(secret)
			if err := s.limit(s.tokens, string(hash[:]), now); err != nil {
				return err
			}
		}
		if p.Role == auth.RoleMachine && !strings.HasPrefix(c.Path(), "/api/agent/") {
			return coded.New(ledger.CodeForbidden, "an agent token reaches only /api/agent/")
		}
		c.Set(keyPrincipal, p)
		c.SetRequest(c.Request().WithContext(auth.WithPrincipal(c.Request().Context(), p)))
		return next(c)
	}
}

func (s *Server) limit(l *limiters, key string, now time.Time) error {
	ok, wait := l.allow(key, now)
	if ok {
		return nil
	}
	secs := retryAfterSeconds(wait)
	return &rateLimitedError{
		err:        coded.Errorf(CodeRateLimited, "too many requests; retry in %ds", secs),
		retryAfter: secs,
	}
}

// bodyLimit caps the request body at n bytes (413 body_too_large).
func (s *Server) bodyLimit(n int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			if req.ContentLength > n {
				return coded.Errorf(CodeBodyTooLarge, "request body of %d bytes is over the limit of %d bytes", req.ContentLength, n)
			}
			req.Body = http.MaxBytesReader(c.Response(), req.Body, n)
			return next(c)
		}
	}
}

// principal is the authenticated caller, or an unauthenticated error.
func principal(c echo.Context) (auth.Principal, error) {
	p, ok := c.Get(keyPrincipal).(auth.Principal)
	if !ok {
		return p, coded.New(CodeUnauthenticated, "this request needs an API token: Authorization: Bearer spice_...")
	}
	return p, nil
}

// callerOf maps a principal to the ledger's caller.
func callerOf(p auth.Principal) ledger.Caller {
	return ledger.Caller{Principal: p.Name, Operator: p.IsOperator()}
}
