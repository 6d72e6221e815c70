package hub

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/spiceroute/spiceroute/hub/contrib"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/payout"
	"github.com/spiceroute/spiceroute/scheduler/nomad"
)

// openMachines builds the contributors' side: enrolments, agents' joins
// and heartbeats, reputation.
func (s *Server) openMachines(sched *nomad.Scheduler) *contrib.Service {
	cfg := s.cfg.Contrib
	cfg.NodePool = sched.NodePool()
	return &contrib.Service{Store: s.Store, Nomad: nomadMachines{sched}, Account: s.contributorAccount, Config: cfg, Logger: s.log}
}

// contributorAccount returns owner's contributor account, opening one (with
// an ID derived from the hub and the owner, so that two joins at once open
// the same) if the owner has none.
func (s *Server) contributorAccount(ctx context.Context, owner string) (ledger.ID, error) {
	accts, err := s.Store.AccountsByOwner(ctx, owner)
	if err != nil {
		return ledger.ID{}, err
	}
	for _, a := range accts {
		if a.Kind == ledger.KindContributor {
			return a.ID, nil
		}
	}
	h := sha256.Sum256([]byte("spiceroute/contributor-account/v1\x00" + s.cfg.Name + "\x00" + owner))
	var id ledger.ID
	copy(id[:], h[:16])
	res, err := s.Ledger.CreateAccounts(ctx, ledger.System, []ledger.Account{{ID: id, Owner: owner, Kind: ledger.KindContributor}})
	if err != nil {
		return ledger.ID{}, err
	}
	if e := res[0].Err; e != nil {
		return ledger.ID{}, fmt.Errorf("hub: contributor account of %s: %w", owner, e)
	}
	return id, nil
}

// nomadMachines adapts the scheduler to what contrib asks of Nomad.
type nomadMachines struct{ *nomad.Scheduler }

func (n nomadMachines) NodeByName(ctx context.Context, name string) (contrib.Node, bool, error) {
	node, ok, err := n.Scheduler.NodeByName(ctx, name)
	return contrib.Node{ID: node.ID, Status: node.Status, Eligible: node.Eligible, Draining: node.Draining}, ok, err
}

func (n nomadMachines) IntroToken(ctx context.Context, nodeName string, ttl time.Duration) (string, error) {
	return n.Scheduler.IntroToken(ctx, nodeName, ttl)
}

// openSpotChecks builds the spot checks of contributors' machines; a
// machine that fails one has its owner's payout withheld when the hub
// makes payouts.
func (s *Server) openSpotChecks(sched *nomad.Scheduler) (*contrib.SpotChecker, error) {
	if err := s.cfg.SpotChecks.Validate(); err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	c := &contrib.SpotChecker{Store: s.Store, Nomad: nomadSpotChecks{sched}, Config: s.cfg.SpotChecks, Logger: s.log}
	if s.Payouts != nil {
		c.Payouts = contrib.PayoutWithholderFunc(func(ctx context.Context, owner string, at time.Time, reason, by string) error {
			_, err := s.Payouts.AddWithhold(ctx, owner, payout.PeriodOf(at), reason, by)
			return err
		})
	}
	return c, nil
}

// nomadSpotChecks adapts the scheduler to what spot checks ask of Nomad.
type nomadSpotChecks struct{ *nomad.Scheduler }

func (n nomadSpotChecks) PoolNodes(ctx context.Context) ([]contrib.Node, error) {
	nodes, err := n.Scheduler.PoolNodes(ctx)
	out := make([]contrib.Node, 0, len(nodes))
	for _, node := range nodes {
		out = append(out, contrib.Node{ID: node.ID, Status: node.Status, Eligible: node.Eligible, Draining: node.Draining})
	}
	return out, err
}

func (n nomadSpotChecks) RunCheck(ctx context.Context, jobID, nodeID, script string, timeout time.Duration) (contrib.CheckRun, error) {
	run, err := n.Scheduler.RunCheck(ctx, jobID, nodeID, script, timeout)
	return contrib.CheckRun{ExitCode: run.ExitCode, Stdout: run.Stdout}, err
}
