package nomad_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/hub/market"
	"github.com/spiceroute/spiceroute/scheduler/nomad"
	"github.com/spiceroute/spiceroute/scheduler/nomadtest"
)

// sleeper is a renter's job of count instances of cpu MHz and 32 MB
// memory, pinned to region (none if ""), that sleeps for ever.
func sleeper(id, region string, count, cpu int) string {
	pin := ""
	if region != "" {
		pin = fmt.Sprintf("constraint {\n attribute = %q\n value = %q\n }\n", nomad.RegionTarget, region)
	}
	return fmt.Sprintf(`job %q {
  type = "batch"
  %s
  group "g" {
    count = %d
    ephemeral_disk {
      size = 150
    }
    task "sleep" {
      driver = "exec"
      config {
        command = "/bin/sleep"
        args    = ["600"]
      }
      resources {
        cpu    = %d
        memory = 32
      }
    }
  }
}
`, id, pin, count, cpu)
}

func register(t *testing.T, s *nomad.Scheduler, renter, hcl string) {
	t.Helper()
	ctx := context.Background()
	j, err := s.ParseHCL(ctx, hcl)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureRenter(ctx, renter); err != nil {
		t.Fatal(err)
	}
	if err := s.Prepare(renter, j); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Register(ctx, renter, j); err != nil {
		t.Fatal(err)
	}
}

// waitSample samples until ok accepts the samples by region, or fails the
// test after a minute with the last ones.
func waitSample(t *testing.T, s *nomad.Scheduler, what string, ok func(map[string]market.Sample) bool) map[string]market.Sample {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ss, err := s.Sample(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]market.Sample{}
		for _, x := range ss {
			if _, dup := m[x.Region]; dup {
				t.Fatalf("region %q sampled twice: %+v", x.Region, ss)
			}
			m[x.Region] = x
		}
		if ok(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: samples %+v", what, ss)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Sample measures a real Nomad node's capacity in its region and floor,
// renters' running and queued allocations as demand in the right region,
// and sees the demand go when the jobs stop.
func TestSample(t *testing.T) {
	srv := nomadtest.NewTestServer(t, nomadtest.WithHCL(fmt.Sprintf("client {\n  node_pool = %q\n  meta {\n    spiceroute_region = \"eu-west\"\n    spiceroute_floor_cpu_core_hour = \"45000\"\n  }\n}\n", nomad.DefaultNodePool)))
	s, err := nomad.New(nomad.Config{Address: srv.Addr, Token: srv.ManagementToken})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.EnsureNodePool(ctx); err != nil {
		t.Fatal(err)
	}
	// The node as Nomad sees it: what it can allocate.
	nc := srv.NewClient(srv.ManagementToken)
	defer nc.Close()
	nodes, _, err := nc.Nodes().List(nil)
	if err != nil || len(nodes) != 1 {
		t.Fatalf("nodes %v, %v", nodes, err)
	}
	node, _, err := nc.Nodes().Info(nodes[0].ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := market.Resources{
		CPUMHz:   node.NodeResources.Cpu.CpuShares - int64(node.ReservedResources.Cpu.CpuShares),
		MemoryMB: node.NodeResources.Memory.MemoryMB - int64(node.ReservedResources.Memory.MemoryMB),
		DiskMB:   node.NodeResources.Disk.DiskMB - int64(node.ReservedResources.Disk.DiskMB),
	}
	if want.CPUMHz < 1000 || want.MemoryMB < 256 {
		t.Fatalf("the test node is too small: %+v", want)
	}

	idle := waitSample(t, s, "idle", func(m map[string]market.Sample) bool { return len(m) == 1 })
	if got := idle["eu-west"]; got.Capacity != want || got.Demand != (market.Resources{}) || got.FloorCPU != 45_000 {
		t.Fatalf("idle eu-west %+v, want capacity %+v, no demand, floor 45000", got, want)
	}

	// Two instances of 60 % of the node's CPU: one runs, one is queued.
	// A job pinned to us-east, where there is no node, is all queued.
	cpu := int(want.CPUMHz * 6 / 10)
	register(t, s, "alice", sleeper("big", "eu-west", 2, cpu))
	register(t, s, "bob", sleeper("far", "us-east", 3, 100))
	one := market.Resources{CPUMHz: int64(cpu), MemoryMB: 32, DiskMB: 150}
	busy := waitSample(t, s, "busy", func(m map[string]market.Sample) bool {
		return m["eu-west"].Demand.CPUMHz == 2*int64(cpu) && m["us-east"].Demand.CPUMHz == 300
	})
	if got := busy["eu-west"]; got.Demand != (market.Resources{CPUMHz: 2 * one.CPUMHz, MemoryMB: 64, DiskMB: 300}) || got.Capacity != want {
		t.Fatalf("busy eu-west %+v, want one running and one queued instance of %+v on capacity %+v", got, one, want)
	}
	if got := busy["us-east"]; got.Demand != (market.Resources{CPUMHz: 300, MemoryMB: 96, DiskMB: 450}) || got.Capacity != (market.Resources{}) || got.FloorCPU != 0 {
		t.Fatalf("us-east %+v, want three queued instances and no capacity", got)
	}
	l := market.LoadOf(busy["eu-west"])
	if l.Utilization.CPU < 10_000 {
		t.Fatalf("eu-west CPU utilization %d bp, want over 100 %% with a queued instance", l.Utilization.CPU)
	}
	// One allocation is placed, in the renter's namespace, for what it asked.
	as, err := s.Allocations(ctx, "alice", "big")
	if err != nil || len(as) != 1 || (as[0].ClientStatus != api.AllocClientStatusPending && as[0].ClientStatus != api.AllocClientStatusRunning) {
		t.Fatalf("alice's allocations %+v, %v", as, err)
	}

	for _, rj := range [][2]string{{"alice", "big"}, {"bob", "far"}} {
		if err := s.Stop(ctx, rj[0], rj[1], false); err != nil {
			t.Fatal(err)
		}
	}
	waitSample(t, s, "after the jobs stopped", func(m map[string]market.Sample) bool {
		return len(m) == 1 && m["eu-west"].Demand == (market.Resources{}) && m["eu-west"].Capacity == want
	})
}

func TestJobRegion(t *testing.T) {
	pin := func(r string) []*api.Constraint {
		return []*api.Constraint{{LTarget: nomad.RegionTarget, RTarget: r, Operand: "="}}
	}
	tests := []struct {
		name string
		job  api.Job
		want string
	}{
		{"None", api.Job{TaskGroups: []*api.TaskGroup{{}}}, ""},
		{"JobLevel", api.Job{Constraints: pin("eu-west"), TaskGroups: []*api.TaskGroup{{}}}, "eu-west"},
		{"EveryGroup", api.Job{TaskGroups: []*api.TaskGroup{{Constraints: pin("eu-west")}, {Constraints: pin("eu-west")}}}, "eu-west"},
		{"GroupsDisagree", api.Job{TaskGroups: []*api.TaskGroup{{Constraints: pin("eu-west")}, {Constraints: pin("us-east")}}}, ""},
		{"OneGroupUnpinned", api.Job{TaskGroups: []*api.TaskGroup{{Constraints: pin("eu-west")}, {}}}, ""},
		{"NotEqual", api.Job{Constraints: []*api.Constraint{{LTarget: nomad.RegionTarget, RTarget: "eu-west", Operand: "!="}}}, ""},
		{"DoubleEqual", api.Job{Constraints: []*api.Constraint{{LTarget: nomad.RegionTarget, RTarget: "eu-west", Operand: "=="}}}, "eu-west"},
		{"OtherAttribute", api.Job{Constraints: []*api.Constraint{{LTarget: "${node.datacenter}", RTarget: "eu-west", Operand: "="}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nomad.JobRegion(&tt.job); got != tt.want {
				t.Fatalf("JobRegion = %q, want %q", got, tt.want)
			}
		})
	}
}
