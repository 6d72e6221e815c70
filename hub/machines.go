package hub

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/spiceroute/spiceroute/hub/contrib"
	"github.com/spiceroute/spiceroute/hub/ledger"
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
