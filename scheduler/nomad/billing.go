package nomad

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/agent/agentapi"
)

// MetaContributorAccount is the node meta key under which a contributor's
// machine names the ledger account its earnings are paid to. The
// SpiceRoute agent sets it when the machine joins.
const MetaContributorAccount = agentapi.MetaAccount

// NodeMeta returns a node's meta.
func (s *Scheduler) NodeMeta(ctx context.Context, nodeID string) (map[string]string, error) {
	n, _, err := s.c.Nodes().Info(nodeID, s.query(ctx, ""))
	if err != nil {
		return nil, fmt.Errorf("nomad: node %s: %w", nodeID, err)
	}
	return n.Meta, nil
}

// JobVersions returns every version Nomad keeps of a renter's job, newest
// first. A job Nomad does not know (never registered, or purged) has none.
func (s *Scheduler) JobVersions(ctx context.Context, renter, id string) ([]*api.Job, error) {
	vs, _, _, err := s.c.Jobs().Versions(id, false, s.query(ctx, s.Namespace(renter)))
	if err != nil {
		if IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("nomad: versions of %s/%s: %w", renter, id, err)
	}
	return vs, nil
}

// IsNotFound reports whether err is Nomad's answer for an unknown object.
func IsNotFound(err error) bool {
	var ue api.UnexpectedResponseError
	if errors.As(err, &ue) {
		return ue.StatusCode() == http.StatusNotFound
	}
	var uep *api.UnexpectedResponseError
	return errors.As(err, &uep) && uep.StatusCode() == http.StatusNotFound
}

// JobUnplaced explains in words why some of a renter's job's allocations
// are not placed (see PlacementFailures), from its newest evaluation that
// failed to place any; "" when nothing is waiting for room.
func (s *Scheduler) JobUnplaced(ctx context.Context, renter, id string) (string, error) {
	q := s.query(ctx, s.Namespace(renter))
	sum, _, err := s.c.Jobs().Summary(id, q)
	if err != nil {
		return "", fmt.Errorf("nomad: summary of %s/%s: %w", renter, id, err)
	}
	queued := 0
	for _, g := range sum.Summary {
		queued += g.Queued
	}
	if queued == 0 {
		return "", nil
	}
	evals, _, err := s.c.Jobs().Evaluations(id, q)
	if err != nil {
		return "", fmt.Errorf("nomad: evaluations of %s/%s: %w", renter, id, err)
	}
	var newest *api.Evaluation
	for _, e := range evals {
		if len(e.FailedTGAllocs) > 0 && (newest == nil || e.CreateIndex > newest.CreateIndex) {
			newest = e
		}
	}
	return PlacementFailures(newest), nil
}

// RenterJobs lists every renter's jobs in one request (all of the hub's
// renter namespaces), keyed by RenterJobKey.
func (s *Scheduler) RenterJobs(ctx context.Context) (map[string]*api.JobListStub, error) {
	stubs, _, err := s.c.Jobs().List(s.query(ctx, "*"))
	if err != nil {
		return nil, fmt.Errorf("nomad: jobs: %w", err)
	}
	out := make(map[string]*api.JobListStub, len(stubs))
	for _, st := range stubs {
		if renter, ok := strings.CutPrefix(st.Namespace, s.cfg.NamespacePrefix); ok {
			out[RenterJobKey(renter, st.ID)] = st
		}
	}
	return out, nil
}

// RenterJobKey identifies a renter's job.
func RenterJobKey(renter, jobID string) string { return renter + "\x00" + jobID }

// AllocCount is how many allocations a job has had (placed, running or
// ended and not yet collected), from its summary; 0 without one.
func AllocCount(st *api.JobListStub) int {
	if st == nil || st.JobSummary == nil {
		return 0
	}
	n := 0
	for _, g := range st.JobSummary.Summary {
		n += g.Starting + g.Running + g.Complete + g.Failed + g.Lost + g.Unknown
	}
	return n
}

// AllocIndex is Nomad's index of its allocations table: no allocation
// event of this cluster has a higher index. A hub whose event cursor is
// above it is looking at another cluster than the one it followed.
func (s *Scheduler) AllocIndex(ctx context.Context) (uint64, error) {
	q := s.query(ctx, "*")
	q.PerPage = 1
	_, meta, err := s.c.Allocations().List(q)
	if err != nil {
		return 0, fmt.Errorf("nomad: allocations: %w", err)
	}
	return meta.LastIndex, nil
}
