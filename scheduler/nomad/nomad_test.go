package nomad_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/hub/admission"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/market"
	"github.com/spiceroute/spiceroute/hub/meter"
	"github.com/spiceroute/spiceroute/scheduler/nomad"
	"github.com/spiceroute/spiceroute/scheduler/nomadtest"
)

// startHub starts a real Nomad agent whose client is a contributor in the
// hub's node pool, and the hub's scheduler on it.
func startHub(t *testing.T) (*nomadtest.Server, *nomad.Scheduler) {
	t.Helper()
	srv := nomadtest.NewTestServer(t, nomadtest.WithHCL("client {\n  node_pool = \""+nomad.DefaultNodePool+"\"\n}\n"))
	s, err := nomad.New(nomad.Config{Address: srv.Addr, Token: srv.ManagementToken})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureNodePool(context.Background()); err != nil {
		t.Fatal(err)
	}
	return srv, s
}

func loadPolicy(t *testing.T) *admission.Policy {
	t.Helper()
	p, err := admission.LoadPolicy("../../policies/admission.hcl")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The README's example job, parsed by Nomad, admitted by the policy,
// registered in the renter's namespace and pinned to the hub's node pool,
// runs on the contributor and prints what it should.
func TestHelloJobRunsInRenterNamespace(t *testing.T) {
	_, s := startHub(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src, err := os.ReadFile("../../nomad-jobs/hello.nomad.hcl")
	if err != nil {
		t.Fatal(err)
	}
	job, err := s.ParseHCL(ctx, string(src))
	if err != nil {
		t.Fatal(err)
	}
	pool := "default" // a renter asking for another pool is overridden
	job.NodePool = &pool
	if err := s.Prepare("alice", job); err != nil {
		t.Fatal(err)
	}
	aj := nomad.AdmissionJob(job)
	if err := loadPolicy(t).Check(&aj, admission.Usage{}); err != nil {
		t.Fatalf("the example job is not admitted: %v", err)
	}
	if tot := aj.Totals(); tot.CPUMHz != 100 || tot.MemoryMB != 64 || tot.DiskMB != 150 || tot.Instances != 1 {
		t.Fatalf("example job totals %+v", tot)
	}
	if err := s.EnsureRenter(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Register(ctx, "alice", job); err != nil {
		t.Fatal(err)
	}
	got, err := s.Job(ctx, "alice", "hello")
	if err != nil || *got.Namespace != "renter-alice" || *got.NodePool != nomad.DefaultNodePool {
		t.Fatalf("registered job: %v / %v, %v", got.Namespace, got.NodePool, err)
	}
	var alloc *api.AllocationListStub
	for alloc == nil || alloc.ClientStatus != api.AllocClientStatusComplete {
		if ctx.Err() != nil {
			t.Fatalf("allocation did not complete: %+v", alloc)
		}
		as, err := s.Allocations(ctx, "alice", "hello")
		if err != nil {
			t.Fatal(err)
		}
		if len(as) > 0 {
			alloc = as[0]
			if alloc.ClientStatus == api.AllocClientStatusFailed {
				t.Fatalf("allocation failed: %+v", alloc.TaskStates)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, err := s.Logs(ctx, "alice", alloc.ID, "hello", "stdout", 4096)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "hello from SpiceRoute") || !strings.Contains(out, "Linux") {
		t.Fatalf("job printed %q", out)
	}
	// The meter sees what ran: the allocated resources, for the time the task ran.
	full, err := s.Allocation(ctx, "alice", alloc.ID)
	if err != nil {
		t.Fatal(err)
	}
	m := nomad.MeterAllocation(full)
	if m.Status != meter.Complete || m.DiskMB != 150 || len(m.Tasks) != 1 || m.Tasks[0].CPUMHz != 100 || m.Tasks[0].MemoryMB != 64 ||
		m.Tasks[0].StartedAt.IsZero() || !m.Tasks[0].FinishedAt.After(m.Tasks[0].StartedAt) {
		t.Fatalf("metered allocation %+v", m)
	}
	ran := m.Tasks[0].FinishedAt.Sub(m.Tasks[0].StartedAt)
	u, err := meter.Measure(m, market.DefaultPrices, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := market.DefaultPrices.Cost(market.Resources{CPUMHz: 100, MemoryMB: 64}, ran)
	disk, _ := market.DefaultPrices.Cost(market.Resources{DiskMB: 150}, ran)
	if u.Total != want+disk {
		t.Fatalf("metered %d for %s, want %d", u.Total, ran, want+disk)
	}
	// Another renter's namespace does not list it.
	if err := s.EnsureRenter(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if js, err := s.Jobs(ctx, "bob"); err != nil || len(js) != 0 {
		t.Fatalf("bob sees %d jobs (%v)", len(js), err)
	}
	if _, err := s.Job(ctx, "bob", "hello"); err == nil {
		t.Fatal("alice's job is visible in bob's namespace")
	}
	if err := s.Stop(ctx, "alice", "hello", true); err != nil {
		t.Fatal(err)
	}
}

// Jobspecs Nomad parses are translated faithfully enough for every
// admission rule to see the violation.
func TestAdmissionSeesViolationsInRealJobspecs(t *testing.T) {
	_, s := startHub(t)
	p := loadPolicy(t)
	ctx := context.Background()
	tests := []struct {
		name, task, group, rule string
	}{
		{"RawExec", `driver = "raw_exec"` + "\n config { command = \"/bin/true\" }", "", "rule allowed_drivers"},
		{"Privileged", `driver = "docker"` + "\n config {\n image = \"x:local\"\n privileged = true\n }", "", "rule no_privileged"},
		{"DockerSocket", `driver = "docker"` + "\n config {\n image = \"x:local\"\n volumes = [\"/var/run/docker.sock:/var/run/docker.sock\"]\n }", "", "docker.sock"},
		{"HostNetwork", `driver = "exec"` + "\n config { command = \"/bin/true\" }", "network {\n mode = \"host\"\n }", "rule no_host_network"},
		{"HostVolume", `driver = "exec"` + "\n config { command = \"/bin/true\" }", "volume \"data\" {\n type = \"host\"\n source = \"data\"\n }", "rule no_host_volumes"},
		{"TooMuchMemory", `driver = "exec"` + "\n config { command = \"/bin/true\" }\n resources {\n memory = 40000\n }", "", "rule job.max_memory_mb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hcl := "job \"x\" {\n group \"g\" {\n" + tt.group + "\n task \"t\" {\n" + tt.task + "\n }\n }\n}\n"
			j, err := s.ParseHCL(ctx, hcl)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Prepare("alice", j); err != nil {
				t.Fatal(err)
			}
			aj := nomad.AdmissionJob(j)
			err = p.Check(&aj, admission.Usage{})
			if coded.CodeOf(err) != admission.CodeViolation || !strings.Contains(err.Error(), tt.rule) {
				t.Fatalf("got %v, want a violation of %q", err, tt.rule)
			}
		})
	}
}
