package nomad

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/hashicorp/nomad/api"
)

// MetaContributorAccount is the node meta key under which a contributor's
// machine names the ledger account its earnings are paid to. The
// SpiceRoute agent sets it when the machine joins.
const MetaContributorAccount = "spiceroute_contributor_account"

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
