package nomad

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/hub/coded"
)

// CodeEvalNotFound answers a renter asking about an evaluation that does not
// exist or is not in the renter's namespace (the two look the same, so IDs
// do not leak).
const CodeEvalNotFound coded.Code = "evaluation_not_found"

// Unplaced explains in words why Nomad could not place some of the
// allocations of one of renter's evaluations, as PlacementFailures does;
// "" means everything was placed. It waits (bounded by ctx) while the
// evaluation is still pending. An evaluation of another renter is reported
// exactly like a missing one: Nomad looks evaluations up by ID whatever
// namespace is asked for, so the namespace is checked here.
func (s *Scheduler) Unplaced(ctx context.Context, renter, evalID string) (string, error) {
	ns := s.Namespace(renter)
	var index uint64
	for {
		q := &api.QueryOptions{Namespace: ns, WaitIndex: index, WaitTime: 10 * time.Second}
		e, meta, err := s.c.Evaluations().Info(evalID, q.WithContext(ctx))
		var ure api.UnexpectedResponseError
		if errors.As(err, &ure) && ure.StatusCode() == http.StatusNotFound {
			return "", coded.Errorf(CodeEvalNotFound, "no evaluation %s", evalID)
		}
		if err != nil {
			return "", fmt.Errorf("nomad: evaluation %s: %w", evalID, err)
		}
		if e.Namespace != ns {
			return "", coded.Errorf(CodeEvalNotFound, "no evaluation %s", evalID)
		}
		if e.Status != api.EvalStatusPending {
			return PlacementFailures(e), nil
		}
		index = meta.LastIndex
	}
}

// PlacementFailures explains in words why Nomad could not place some of an
// evaluation's allocations, from the scheduler's metrics in
// e.FailedTGAllocs. It is "" when the evaluation placed everything.
// Otherwise it has one line per task group, sorted by group name:
//
//	group "<name>"[ (<n> allocations)]: <reason>[; <reason>]...
//
// where the reasons are, in this order:
//
//	node pool <pool> has no nodes
//	none of the <n> nodes in pool <pool> could be considered (down, draining, ineligible or in other datacenters)
//	no node is available in datacenter "<dc>"
//	node class "<class>" filtered <n> node(s)
//	constraint <constraint> filtered <n> node(s)       (Nomad's own words, e.g. ${attr.kernel.name} = windows or missing drivers)
//	no node has enough <resource> (<n> of <m> nodes in pool <pool> exhausted on <dimension>)
//	not enough <resource> on <n> of <m> nodes in pool <pool>
//	<n> of <m> nodes in pool <pool> had no room left    (exhausted, no dimension given)
//	quota limit reached: <limit>
//
// <resource> is CPU, memory, disk or Nomad's name for the dimension (e.g.
// "network: port collision"). "no node has enough" is used when every node
// that passed the filters was exhausted on that dimension.
func PlacementFailures(e *api.Evaluation) string {
	if e == nil || len(e.FailedTGAllocs) == 0 {
		return ""
	}
	var lines []string
	for _, g := range slices.Sorted(maps.Keys(e.FailedTGAllocs)) {
		lines = append(lines, groupFailure(g, e.FailedTGAllocs[g]))
	}
	return strings.Join(lines, "\n")
}

func groupFailure(group string, m *api.AllocationMetric) string {
	head := fmt.Sprintf("group %q", group)
	if m == nil {
		return head + ": Nomad gave no reason"
	}
	if n := m.CoalescedFailures + 1; n > 1 {
		head += fmt.Sprintf(" (%d allocations)", n)
	}
	reasons := placementReasons(m)
	if len(reasons) == 0 {
		reasons = []string{fmt.Sprintf("Nomad gave no reason (%s evaluated, %d filtered, %d exhausted)",
			nodes(m.NodesEvaluated), m.NodesFiltered, m.NodesExhausted)}
	}
	return head + ": " + strings.Join(reasons, "; ")
}

func placementReasons(m *api.AllocationMetric) []string {
	var out []string
	inPool := ""
	if m.NodePool != "" {
		inPool = " in pool " + m.NodePool
	}
	switch {
	case m.NodesInPool == 0 && m.NodesEvaluated == 0 && m.NodePool != "":
		out = append(out, fmt.Sprintf("node pool %s has no nodes", m.NodePool))
	case m.NodesEvaluated == 0 && m.NodesInPool > 0:
		out = append(out, fmt.Sprintf("none of the %d nodes%s could be considered (down, draining, ineligible or in other datacenters)", m.NodesInPool, inPool))
	}
	for _, dc := range slices.Sorted(maps.Keys(m.NodesAvailable)) {
		if m.NodesAvailable[dc] == 0 {
			out = append(out, fmt.Sprintf("no node is available in datacenter %q", dc))
		}
	}
	for _, class := range slices.Sorted(maps.Keys(m.ClassFiltered)) {
		out = append(out, fmt.Sprintf("node class %q filtered %s", class, nodes(m.ClassFiltered[class])))
	}
	for _, c := range slices.Sorted(maps.Keys(m.ConstraintFiltered)) {
		out = append(out, fmt.Sprintf("constraint %s filtered %s", c, nodes(m.ConstraintFiltered[c])))
	}
	candidates := m.NodesEvaluated - m.NodesFiltered
	total := max(m.NodesInPool, m.NodesEvaluated)
	for _, dim := range slices.Sorted(maps.Keys(m.DimensionExhausted)) {
		n := m.DimensionExhausted[dim]
		if n >= candidates && candidates > 0 {
			out = append(out, fmt.Sprintf("no node has enough %s (%d of %d nodes%s exhausted on %s)", resourceWord(dim), n, total, inPool, dim))
		} else {
			out = append(out, fmt.Sprintf("not enough %s on %d of %d nodes%s", resourceWord(dim), n, total, inPool))
		}
	}
	if len(m.DimensionExhausted) == 0 && m.NodesExhausted > 0 {
		out = append(out, fmt.Sprintf("%d of %d nodes%s had no room left", m.NodesExhausted, total, inPool))
	}
	for _, q := range m.QuotaExhausted {
		out = append(out, "quota limit reached: "+q)
	}
	return out
}

// resourceWord names one of Nomad's exhausted dimensions for people.
func resourceWord(dim string) string {
	switch dim {
	case "cpu":
		return "CPU"
	case "cores":
		return "free CPU cores"
	}
	return dim
}

func nodes(n int) string {
	if n == 1 {
		return "1 node"
	}
	return fmt.Sprintf("%d nodes", n)
}
