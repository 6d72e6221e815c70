package api

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/spiceroute/spiceroute/agent/agentapi"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/contrib"
	"github.com/spiceroute/spiceroute/hub/ledger"
)

// MachineService registers and follows contributors' machines
// (*contrib.Service). Safe for concurrent use.
type MachineService interface {
	Enrol(ctx context.Context, by, owner string, ttl time.Duration) (string, time.Time, error)
	Join(ctx context.Context, req agentapi.JoinRequest) (*agentapi.JoinReply, error)
	Heartbeat(ctx context.Context, caller auth.Principal, hb agentapi.Heartbeat) (*agentapi.HeartbeatReply, error)
	Machines(ctx context.Context, owner string) ([]*contrib.Machine, error)
	Reputation(ctx context.Context, m *contrib.Machine) (contrib.Reputation, error)
}

// EnrolmentRequest asks for an enrolment token for a contributor.
type EnrolmentRequest struct {
	Owner string `json:"owner"`
	// TTL is how long the token is good for, a Go duration ("24h").
	TTL string `json:"ttl,omitempty"`
}

// EnrolmentReply carries the token, shown once.
type EnrolmentReply struct {
	Token     string    `json:"token"`
	Owner     string    `json:"owner"`
	ExpiresAt time.Time `json:"expires_at"`
}

// MachineReply is a machine with its reputation.
type MachineReply struct {
	*contrib.Machine
	Reputation contrib.Reputation `json:"reputation"`
}

func (s *Server) registerMachines(g *echo.Group, limit echo.MiddlewareFunc) {
	g.POST("/enrolments", s.enrol, limit)
	g.POST("/agent/join", s.agentJoin, limit)
	g.POST("/agent/heartbeat", s.agentHeartbeat, limit)
	g.GET("/machines", s.listMachines)
	g.GET("/machines/:id", s.getMachine)
}

// enrol (operators only) issues a single-use enrolment token.
func (s *Server) enrol(c echo.Context) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	if !p.IsOperator() {
		return coded.New(ledger.CodeForbidden, "only the hub's operators issue enrolment tokens")
	}
	var req EnrolmentRequest
	if err := decodeJSON(c.Request().Body, &req, false); err != nil {
		return err
	}
	var ttl time.Duration
	if req.TTL != "" {
		if ttl, err = time.ParseDuration(req.TTL); err != nil {
			return badf("ttl %q: want a duration like 24h", req.TTL)
		}
	}
	secret, expires, err := s.deps.Machines.Enrol(c.Request().Context(), p.Name, req.Owner, ttl)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, EnrolmentReply{Token: secret, Owner: req.Owner, ExpiresAt: expires})
}

// agentJoin needs no API token: the enrolment token in the body is the
// credential. Requests are rate-limited per client IP like every request
// without a token.
func (s *Server) agentJoin(c echo.Context) error {
	var req agentapi.JoinRequest
	if err := decodeJSON(c.Request().Body, &req, false); err != nil {
		return err
	}
	reply, err := s.deps.Machines.Join(c.Request().Context(), req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, reply)
}

func (s *Server) agentHeartbeat(c echo.Context) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	var hb agentapi.Heartbeat
	if err := decodeJSON(c.Request().Body, &hb, false); err != nil {
		return err
	}
	reply, err := s.deps.Machines.Heartbeat(c.Request().Context(), p, hb)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, reply)
}

// listMachines lists the caller's machines; operators see every machine,
// or one owner's with ?owner=.
func (s *Server) listMachines(c echo.Context) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	owner := c.QueryParam("owner")
	switch {
	case p.IsOperator():
	case owner == "" || owner == p.Name:
		owner = p.Name
	default:
		return coded.New(ledger.CodeForbidden, "only the hub's operators see other contributors' machines")
	}
	ms, err := s.deps.Machines.Machines(c.Request().Context(), owner)
	if err != nil {
		return err
	}
	out := make([]MachineReply, 0, len(ms))
	for _, m := range ms {
		r, err := s.deps.Machines.Reputation(c.Request().Context(), m)
		if err != nil {
			return err
		}
		out = append(out, MachineReply{Machine: m, Reputation: r})
	}
	return c.JSON(http.StatusOK, map[string]any{"machines": out})
}

// getMachine answers 404 for a machine that is not the caller's.
func (s *Server) getMachine(c echo.Context) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	id, err := ledger.ParseID(c.Param("id"))
	if err != nil {
		return badf("machine ID %q: %v", c.Param("id"), err)
	}
	owner := p.Name
	if p.IsOperator() {
		owner = ""
	}
	ms, err := s.deps.Machines.Machines(c.Request().Context(), owner)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.ID == id {
			r, err := s.deps.Machines.Reputation(c.Request().Context(), m)
			if err != nil {
				return err
			}
			return c.JSON(http.StatusOK, MachineReply{Machine: m, Reputation: r})
		}
	}
	return coded.Errorf(contrib.CodeNotFound, "no machine %s", id)
}
