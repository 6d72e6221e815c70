package nomad

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/agent/agentapi"
	"github.com/spiceroute/spiceroute/hub/admission"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
)

// Supply and demand for live pricing (hub/market).

// RegionTarget is the constraint target that pins a job to a region.
const RegionTarget = "${meta." + agentapi.MetaRegion + "}"

// nodeInfo is what pricing needs of a node's meta, cached by the node's
// modify index (a meta change is a node update).
type nodeInfo struct {
	modify   uint64
	region   string
	floorCPU int64
	// hasFloor: the meta names a floor (0 included); machines without
	// one are no contributor's offer (Offers).
	hasFloor bool
}

// nodeCache holds nodeInfo by node ID. Safe for concurrent use.
type nodeCache struct {
	sync.Mutex
	m map[string]nodeInfo
}

// forget drops the nodes not in keep (they left the pool or the cluster).
func (c *nodeCache) forget(keep map[string]string) {
	c.Lock()
	defer c.Unlock()
	for id := range c.m {
		if _, ok := keep[id]; !ok {
			delete(c.m, id)
		}
	}
}

// Sample measures the supply and demand of the hub's node pool per
// region (see market.Sample), in one Nomad request for the nodes, one for
// the allocations and one for the jobs, plus one per node whose meta
// changed and one per renter job with queued allocations:
//
//   - capacity: the resources less the reserved of every node in the pool
//     that is ready, eligible and not draining, in the region of its meta
//     spiceroute_region ("" without one); FloorCPU the cheapest of their
//     meta spiceroute_floor_cpu_core_hour;
//   - demand: the allocated resources of renters' allocations that are
//     pending or running (and meant to run) on the pool's nodes, in their
//     node's region, plus each queued allocation of a renter's job (its
//     summary's Queued) at its task group's resources, in the region the
//     job pins (JobRegion; "" for none).
//
// Regions come sorted by name, each once.
func (s *Scheduler) Sample(ctx context.Context) ([]market.Sample, error) {
	nq := s.query(ctx, "")
	nq.Params = map[string]string{"resources": "true"}
	nodes, _, err := s.c.Nodes().List(nq)
	if err != nil {
		return nil, fmt.Errorf("nomad: nodes: %w", err)
	}
	regions := map[string]*market.Sample{}
	at := func(r string) *market.Sample {
		if regions[r] == nil {
			regions[r] = &market.Sample{Region: r}
		}
		return regions[r]
	}
	nodeRegion := map[string]string{}
	for _, n := range nodes {
		if n.NodePool != s.cfg.NodePool {
			continue
		}
		info, err := s.nodeInfo(ctx, n)
		if err != nil {
			return nil, err
		}
		nodeRegion[n.ID] = info.region
		if n.Status != api.NodeStatusReady || n.SchedulingEligibility != api.NodeSchedulingEligible || n.Drain {
			continue
		}
		r := at(info.region)
		r.Capacity = add(r.Capacity, capacity(n))
		if f := info.floorCPU; f > 0 && (r.FloorCPU == 0 || int64(r.FloorCPU) > f) {
			r.FloorCPU = ledger.Amount(f)
		}
	}
	s.nodes.forget(nodeRegion)
	aq := s.query(ctx, "*")
	aq.Params = map[string]string{"resources": "true"}
	// Only the allocations that hold resources: not the ended ones Nomad
	// keeps until it collects them.
	aq.Filter = `DesiredStatus == "run" and (ClientStatus == "pending" or ClientStatus == "running")`
	allocs, _, err := s.c.Allocations().List(aq)
	if err != nil {
		return nil, fmt.Errorf("nomad: allocations: %w", err)
	}
	for _, a := range allocs {
		region, inPool := nodeRegion[a.NodeID]
		if !inPool || !strings.HasPrefix(a.Namespace, s.cfg.NamespacePrefix) || a.DesiredStatus != api.AllocDesiredStatusRun ||
			(a.ClientStatus != api.AllocClientStatusPending && a.ClientStatus != api.AllocClientStatusRunning) {
			continue
		}
		r := at(region)
		r.Demand = add(r.Demand, allocated(a.AllocatedResources))
	}
	jobs, _, err := s.c.Jobs().List(s.query(ctx, "*"))
	if err != nil {
		return nil, fmt.Errorf("nomad: jobs: %w", err)
	}
	for _, st := range jobs {
		if !strings.HasPrefix(st.Namespace, s.cfg.NamespacePrefix) || st.Stop || st.JobSummary == nil || queued(st.JobSummary) == 0 {
			continue
		}
		j, _, err := s.c.Jobs().Info(st.ID, s.query(ctx, st.Namespace))
		if IsNotFound(err) {
			continue // purged meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("nomad: job %s/%s: %w", st.Namespace, st.ID, err)
		}
		if j.NodePool != nil && *j.NodePool != s.cfg.NodePool {
			continue
		}
		r := at(JobRegion(j))
		for _, g := range AdmissionJob(j).Groups {
			if sum := st.JobSummary.Summary[g.Name]; sum.Queued > 0 {
				r.Demand = add(r.Demand, scale(instance(g), int64(sum.Queued)))
			}
		}
	}
	out := make([]market.Sample, 0, len(regions))
	for _, r := range regions {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Region < out[j].Region })
	return out, nil
}

// nodeInfo returns the region and CPU floor in a node's meta, reading the
// node only when it changed since it was last read.
func (s *Scheduler) nodeInfo(ctx context.Context, n *api.NodeListStub) (nodeInfo, error) {
	s.nodes.Lock()
	info, ok := s.nodes.m[n.ID]
	s.nodes.Unlock()
	if ok && info.modify == n.ModifyIndex {
		return info, nil
	}
	meta, err := s.NodeMeta(ctx, n.ID)
	if IsNotFound(err) {
		return nodeInfo{modify: n.ModifyIndex}, nil // gone meanwhile: no region
	}
	if err != nil {
		return nodeInfo{}, err
	}
	info = nodeInfo{modify: n.ModifyIndex, region: meta[agentapi.MetaRegion]}
	if agentapi.ValidRegion(info.region) != nil {
		info.region = "" // not a region the hub could price
	}
	if f, err := strconv.ParseInt(meta[agentapi.MetaFloorCPU], 10, 64); err == nil && f >= 0 {
		info.floorCPU, info.hasFloor = f, true
	}
	s.nodes.Lock()
	if s.nodes.m == nil {
		s.nodes.m = map[string]nodeInfo{}
	}
	s.nodes.m[n.ID] = info
	s.nodes.Unlock()
	return info, nil
}

// JobRegion is the region a job pins with a constraint ${meta.spiceroute_region}
// = "<region>" (operator "=" or "=="), at the job's level or, the same, in
// every task group; "" when it pins none.
func JobRegion(j *api.Job) string {
	if r := pinned(j.Constraints); r != "" {
		return r
	}
	region := ""
	for i, tg := range j.TaskGroups {
		if tg == nil {
			return ""
		}
		r := pinned(tg.Constraints)
		if r == "" || (i > 0 && r != region) {
			return ""
		}
		region = r
	}
	return region
}

func pinned(cs []*api.Constraint) string {
	for _, c := range cs {
		if c != nil && c.LTarget == RegionTarget && (c.Operand == "" || c.Operand == "=" || c.Operand == "==") {
			return c.RTarget
		}
	}
	return ""
}

func queued(sum *api.JobSummary) int {
	n := 0
	for _, g := range sum.Summary {
		n += g.Queued
	}
	return n
}

// capacity is what a node can allocate: its resources less the reserved.
func capacity(n *api.NodeListStub) market.Resources {
	var r market.Resources
	if nr := n.NodeResources; nr != nil {
		r = market.Resources{CPUMHz: nr.Cpu.CpuShares, MemoryMB: nr.Memory.MemoryMB, DiskMB: nr.Disk.DiskMB}
	}
	if rr := n.ReservedResources; rr != nil {
		r.CPUMHz -= int64(rr.Cpu.CpuShares)
		r.MemoryMB -= int64(rr.Memory.MemoryMB)
		r.DiskMB -= int64(rr.Disk.DiskMB)
	}
	return market.Resources{CPUMHz: max(r.CPUMHz, 0), MemoryMB: max(r.MemoryMB, 0), DiskMB: max(r.DiskMB, 0)}
}

// allocated is what an allocation holds: its tasks' CPU and memory and
// its group's ephemeral disk.
func allocated(ar *api.AllocatedResources) market.Resources {
	var r market.Resources
	if ar == nil {
		return r
	}
	for _, t := range ar.Tasks {
		if t != nil {
			r.CPUMHz += t.Cpu.CpuShares
			r.MemoryMB += t.Memory.MemoryMB
		}
	}
	r.DiskMB = ar.Shared.DiskMB
	return r
}

// instance is what one allocation of a task group asks for.
func instance(g admission.Group) market.Resources {
	r := market.Resources{DiskMB: int64(g.DiskMB)}
	for _, t := range g.Tasks {
		r.CPUMHz += int64(t.CPUMHz + t.Cores*admission.CoreMHz)
		r.MemoryMB += int64(t.MemoryMB)
	}
	return r
}

func add(a, b market.Resources) market.Resources {
	return market.Resources{CPUMHz: a.CPUMHz + b.CPUMHz, MemoryMB: a.MemoryMB + b.MemoryMB, DiskMB: a.DiskMB + b.DiskMB}
}

func scale(r market.Resources, n int64) market.Resources {
	return market.Resources{CPUMHz: r.CPUMHz * n, MemoryMB: r.MemoryMB * n, DiskMB: r.DiskMB * n}
}
