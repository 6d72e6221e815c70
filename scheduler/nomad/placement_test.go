package nomad_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/scheduler/nomad"
)

func ExamplePlacementFailures() {
	e := &api.Evaluation{FailedTGAllocs: map[string]*api.AllocationMetric{
		"big": {NodePool: "spiceroute", NodesInPool: 1, NodesEvaluated: 1, NodesExhausted: 1,
			DimensionExhausted: map[string]int{"memory": 1}},
		"win": {NodePool: "spiceroute", NodesInPool: 1, NodesEvaluated: 1, NodesFiltered: 1, CoalescedFailures: 2,
			ConstraintFiltered: map[string]int{"${attr.kernel.name} = windows": 1}},
	}}
	fmt.Println(nomad.PlacementFailures(e))
	// Output:
	// group "big": no node has enough memory (1 of 1 nodes in pool spiceroute exhausted on memory)
	// group "win" (3 allocations): constraint ${attr.kernel.name} = windows filtered 1 node
}

func TestPlacementFailuresWords(t *testing.T) {
	tests := []struct {
		name string
		m    *api.AllocationMetric
		want string
	}{
		{"EmptyPool", &api.AllocationMetric{NodePool: "spiceroute"}, `group "g": node pool spiceroute has no nodes`},
		{"NoneEligible", &api.AllocationMetric{NodePool: "spiceroute", NodesInPool: 3},
			`group "g": none of the 3 nodes in pool spiceroute could be considered (down, draining, ineligible or in other datacenters)`},
		{"DatacenterEmpty", &api.AllocationMetric{NodePool: "spiceroute", NodesInPool: 2, NodesEvaluated: 2, NodesFiltered: 2,
			NodesAvailable: map[string]int{"dc2": 0}, ConstraintFiltered: map[string]int{"missing drivers": 2}},
			`group "g": no node is available in datacenter "dc2"; constraint missing drivers filtered 2 nodes`},
		{"SomeNodesShortOfCPU", &api.AllocationMetric{NodePool: "spiceroute", NodesInPool: 3, NodesEvaluated: 3, NodesExhausted: 1,
			DimensionExhausted: map[string]int{"cpu": 1}},
			`group "g": not enough CPU on 1 of 3 nodes in pool spiceroute`},
		{"ExhaustedWithoutDimension", &api.AllocationMetric{NodePool: "p", NodesInPool: 2, NodesEvaluated: 2, NodesExhausted: 2},
			`group "g": 2 of 2 nodes in pool p had no room left`},
		{"Quota", &api.AllocationMetric{NodePool: "p", NodesInPool: 1, NodesEvaluated: 1, QuotaExhausted: []string{"memory exhausted (2048 needed > 1024 limit)"}},
			`group "g": quota limit reached: memory exhausted (2048 needed > 1024 limit)`},
		{"NoReason", &api.AllocationMetric{NodePool: "p", NodesInPool: 1, NodesEvaluated: 1},
			`group "g": Nomad gave no reason (1 node evaluated, 0 filtered, 0 exhausted)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := nomad.PlacementFailures(&api.Evaluation{FailedTGAllocs: map[string]*api.AllocationMetric{"g": tt.m}})
			if got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
	t.Run("AllPlaced", func(t *testing.T) {
		if got := nomad.PlacementFailures(&api.Evaluation{Status: api.EvalStatusComplete}); got != "" {
			t.Fatalf("an evaluation that placed everything explains %q", got)
		}
	})
}

// Jobs the dev agent's only client cannot run get the reason from their
// evaluation, in words; another renter cannot read it.
func TestUnplacedExplainsFromRealEvaluations(t *testing.T) {
	_, s := startHub(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.EnsureRenter(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	register := func(sub *testing.T, hcl string) string {
		sub.Helper()
		j, err := s.ParseHCL(ctx, hcl)
		if err != nil {
			sub.Fatal(err)
		}
		if err := s.Prepare("alice", j); err != nil {
			t.Fatal(err)
		}
		reg, err := s.Register(ctx, "alice", j)
		if err != nil {
			sub.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Stop(context.Background(), "alice", *j.ID, true) })
		return reg.EvalID
	}
	const task = "driver = \"exec\"\n config {\n command = \"/bin/true\"\n }\n"
	tests := []struct {
		name, hcl string
		want      []string
	}{
		{"MoreMemoryThanAnyNode",
			"job \"big\" {\n type = \"batch\"\n group \"big\" {\n task \"t\" {\n" + task + " resources {\n memory = 1048576\n }\n }\n }\n}\n",
			[]string{`group "big": no node has enough memory (1 of 1 nodes in pool spiceroute exhausted on memory)`}},
		{"ImpossibleConstraint",
			"job \"win\" {\n type = \"batch\"\n group \"win\" {\n constraint {\n attribute = \"${attr.kernel.name}\"\n value = \"windows\"\n }\n task \"t\" {\n" + task + " }\n }\n}\n",
			[]string{`group "win": constraint ${attr.kernel.name} = windows filtered 1 node`}},
		{"Placed",
			"job \"ok\" {\n type = \"batch\"\n group \"ok\" {\n task \"t\" {\n" + task + " }\n }\n}\n",
			nil},
	}
	evals := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evalID := register(t, tt.hcl)
			evals[tt.name] = evalID
			got, err := s.Unplaced(ctx, "alice", evalID)
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.Join(tt.want, "\n"); got != want {
				t.Fatalf("got  %q\nwant %q", got, want)
			}
		})
	}
	t.Run("AnotherRenterSeesNoSuchEvaluation", func(t *testing.T) {
		_, err := s.Unplaced(ctx, "bob", evals["MoreMemoryThanAnyNode"])
		_, missing := s.Unplaced(ctx, "bob", "00000000-0000-4000-8000-000000000000")
		if coded.CodeOf(err) != nomad.CodeEvalNotFound || coded.CodeOf(missing) != nomad.CodeEvalNotFound || err.Error() == "" {
			t.Fatalf("bob reading alice's evaluation: %v; a missing one: %v", err, missing)
		}
		if strings.Contains(err.Error(), "memory") {
			t.Fatalf("bob learns why alice's job is not placed: %v", err)
		}
	})
}
