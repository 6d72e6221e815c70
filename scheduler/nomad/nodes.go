package nomad

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/nomad/api"
)

// IntroToken creates a Nomad client introduction token (Nomad 1.11, `nomad
// node intro create`) for a contributor's machine: a JWT signed by the
// cluster that lets one client register, scoped to the node name and the
// hub's node pool. Servers with client_introduction enforcement "strict"
// refuse clients without one.
func (s *Scheduler) IntroToken(ctx context.Context, nodeName string, ttl time.Duration) (string, error) {
	resp, _, err := s.c.ACLIdentity().CreateClientIntroductionToken(&api.ACLIdentityClientIntroductionTokenRequest{
		TTL: ttl, NodeName: nodeName, NodePool: s.cfg.NodePool}, s.write(ctx, ""))
	if err != nil {
		return "", fmt.Errorf("nomad: introduction token for %s: %w", nodeName, err)
	}
	return resp.JWT, nil
}

// Node is what the hub follows of a contributor's Nomad client node.
type Node struct {
	ID         string
	Name       string
	Pool       string
	Status     string // "ready", "down", "initializing", "disconnected"
	Eligible   bool   // schedulable for new work
	Draining   bool
	Datacenter string
}

// Ready reports whether the node takes new work.
func (n Node) Ready() bool { return n.Status == api.NodeStatusReady && n.Eligible && !n.Draining }

// PoolNodes lists the nodes of the hub's node pool.
func (s *Scheduler) PoolNodes(ctx context.Context) ([]Node, error) {
	q := s.query(ctx, "")
	q.Filter = fmt.Sprintf("NodePool == %q", s.cfg.NodePool)
	stubs, _, err := s.c.Nodes().List(q)
	if err != nil {
		return nil, fmt.Errorf("nomad: nodes of pool %s: %w", s.cfg.NodePool, err)
	}
	out := make([]Node, 0, len(stubs))
	for _, n := range stubs {
		out = append(out, Node{ID: n.ID, Name: n.Name, Pool: n.NodePool, Status: n.Status, Eligible: n.SchedulingEligibility == api.NodeSchedulingEligible,
			Draining: n.Drain, Datacenter: n.Datacenter})
	}
	return out, nil
}

// NodeByName finds a node of the hub's pool by name; ok is false when no
// such node has registered (yet). A name taken by nodes that came and went
// resolves to the newest registration that is not down, else the newest.
func (s *Scheduler) NodeByName(ctx context.Context, name string) (n Node, ok bool, err error) {
	nodes, err := s.PoolNodes(ctx)
	if err != nil {
		return Node{}, false, err
	}
	for _, c := range nodes {
		if c.Name != name {
			continue
		}
		if !ok || (n.Status == api.NodeStatusDown && c.Status != api.NodeStatusDown) {
			n, ok = c, true
		}
	}
	return n, ok, nil
}

// DrainDeadline is how long running allocations get on a node whose
// owner's availability window closed before Nomad stops them.
const DrainDeadline = 10 * time.Minute

// SetAvailable drains a node and makes it ineligible for new work (false),
// or ends the drain and makes it eligible again (true). It is idempotent.
func (s *Scheduler) SetAvailable(ctx context.Context, nodeID string, available bool) error {
	var err error
	if available {
		// Ending a drain leaves the node ineligible unless told otherwise.
		_, err = s.c.Nodes().UpdateDrainOpts(nodeID, &api.DrainOptions{DrainSpec: nil, MarkEligible: true, Meta: map[string]string{"spiceroute": "availability window open"}}, s.write(ctx, ""))
		if err == nil {
			_, err = s.c.Nodes().ToggleEligibility(nodeID, true, s.write(ctx, ""))
		}
	} else {
		_, err = s.c.Nodes().UpdateDrainOpts(nodeID, &api.DrainOptions{DrainSpec: &api.DrainSpec{Deadline: DrainDeadline},
			Meta: map[string]string{"spiceroute": "availability window closed"}}, s.write(ctx, ""))
	}
	if err != nil {
		return fmt.Errorf("nomad: node %s available=%t: %w", nodeID, available, err)
	}
	return nil
}

// SetEligible makes a node eligible or ineligible for new work without
// touching what runs on it (reputation below the hub's threshold).
func (s *Scheduler) SetEligible(ctx context.Context, nodeID string, eligible bool) error {
	if _, err := s.c.Nodes().ToggleEligibility(nodeID, eligible, s.write(ctx, "")); err != nil {
		return fmt.Errorf("nomad: node %s eligible=%t: %w", nodeID, eligible, err)
	}
	return nil
}

// Offer is a ready contributor machine's offer: where it is and the lowest
// CPU price it takes, from its node's meta.
type Offer struct {
	NodeID   string
	Region   string
	FloorCPU int64 // µSP per core-hour
}

// OffersTTL is how long Offers answers from its last reading: admission
// asks on every job, and machines come and go far more slowly.
const OffersTTL = 2 * time.Second

// offersCache is the last reading of Offers.
type offersCache struct {
	sync.Mutex
	at     time.Time
	offers []Offer
}

// Offers lists the offers of the pool's nodes that take new work (ready,
// eligible, not draining) and state a price floor, as Nomad saw them at
// most OffersTTL ago. Node meta is read only for nodes that changed since
// last time.
func (s *Scheduler) Offers(ctx context.Context) ([]Offer, error) {
	s.offers.Lock()
	defer s.offers.Unlock()
	if time.Since(s.offers.at) < OffersTTL {
		return s.offers.offers, nil
	}
	offers, err := s.readOffers(ctx)
	if err != nil {
		return nil, err
	}
	s.offers.at, s.offers.offers = time.Now(), offers
	return offers, nil
}

func (s *Scheduler) readOffers(ctx context.Context) ([]Offer, error) {
	nodes, _, err := s.c.Nodes().List(s.query(ctx, ""))
	if err != nil {
		return nil, fmt.Errorf("nomad: nodes: %w", err)
	}
	var out []Offer
	for _, n := range nodes {
		if n.NodePool != s.cfg.NodePool || n.Status != api.NodeStatusReady || n.SchedulingEligibility != api.NodeSchedulingEligible || n.Drain {
			continue
		}
		info, err := s.nodeInfo(ctx, n)
		if err != nil {
			return nil, err
		}
		if info.hasFloor {
			out = append(out, Offer{NodeID: n.ID, Region: info.region, FloorCPU: info.floorCPU})
		}
	}
	return out, nil
}

// ApplyNodeMeta sets dynamic metadata on a node (`nomad node meta apply`):
// what the hub learns of a machine after it joined, such as its measured
// round-trip times. Nomad forwards the request to the node's client.
func (s *Scheduler) ApplyNodeMeta(ctx context.Context, nodeID string, meta map[string]string) error {
	m := make(map[string]*string, len(meta))
	for k, v := range meta {
		m[k] = &v
	}
	if _, err := s.c.Nodes().Meta().Apply(&api.NodeMetaApplyRequest{NodeID: nodeID, Meta: m}, s.query(ctx, "")); err != nil {
		return fmt.Errorf("nomad: node %s meta: %w", nodeID, err)
	}
	return nil
}
