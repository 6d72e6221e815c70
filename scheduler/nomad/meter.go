package nomad

import (
	"context"
	"fmt"

	"github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/hub/meter"
)

// MeterAllocation is what the meter needs of a Nomad allocation: its client
// status, each task's allocated CPU and memory and when it started and
// finished, and the group's ephemeral disk.
func MeterAllocation(a *api.Allocation) meter.Allocation {
	m := meter.Allocation{ID: a.ID, Node: a.NodeID, Status: meter.Status(a.ClientStatus)}
	if a.AllocatedResources == nil {
		return m
	}
	m.DiskMB = int64(a.AllocatedResources.Shared.DiskMB)
	for name, tr := range a.AllocatedResources.Tasks {
		t := meter.Task{Name: name}
		if tr != nil {
			t.CPUMHz, t.MemoryMB = tr.Cpu.CpuShares, tr.Memory.MemoryMB
		}
		if st := a.TaskStates[name]; st != nil {
			t.StartedAt, t.FinishedAt = st.StartedAt, st.FinishedAt
		}
		m.Tasks = append(m.Tasks, t)
	}
	return m
}

// Allocation returns one of a renter's allocations.
func (s *Scheduler) Allocation(ctx context.Context, renter, id string) (*api.Allocation, error) {
	a, _, err := s.c.Allocations().Info(id, s.query(ctx, s.Namespace(renter)))
	if err != nil {
		return nil, fmt.Errorf("nomad: alloc %s: %w", id, err)
	}
	return a, nil
}
