package nomad_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/scheduler/nomad"
)

// A spot check runs on the node it is pinned to, in the hub's own
// namespace, and comes back with its stdout and exit code; one that cannot
// be placed comes back as not run, quickly; either way the job is purged,
// and no renter's listing sees it.
func TestSpotCheckRunCheck(t *testing.T) {
	srv, s := startHub(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nodes, err := s.PoolNodes(ctx)
	if err != nil || len(nodes) != 1 {
		t.Fatalf("pool nodes: %v %v", nodes, err)
	}
	node := nodes[0].ID
	gone := func(t *testing.T, id string) {
		t.Helper()
		if j, _, err := srv.Client.Jobs().Info(id, &api.QueryOptions{Namespace: nomad.CheckNamespace}); err == nil {
			t.Errorf("check job %s left in Nomad: %+v", id, j.Status)
		}
	}

	t.Run("Answers", func(t *testing.T) {
		run, err := s.RunCheck(ctx, "check-answers", node, `x=6; echo "$(( $x * 7 ))"`, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if run.Stdout != "42\n" || run.ExitCode != 0 || run.AllocID == "" {
			t.Fatalf("run: %+v", run)
		}
		a, _, err := srv.Client.Allocations().Info(run.AllocID, &api.QueryOptions{Namespace: nomad.CheckNamespace})
		if err == nil && a.NodeID != node {
			t.Errorf("the check ran on %s, not %s", a.NodeID, node)
		}
		gone(t, "check-answers")
	})

	t.Run("NonZeroExitRan", func(t *testing.T) {
		run, err := s.RunCheck(ctx, "check-exit", node, `echo 1; exit 3`, time.Minute)
		if err != nil || run.ExitCode != 3 || run.Stdout != "1\n" {
			t.Fatalf("run: %+v %v", run, err)
		}
		gone(t, "check-exit")
	})

	t.Run("UnplaceableNotRun", func(t *testing.T) {
		start := time.Now()
		_, err := s.RunCheck(ctx, "check-nowhere", "5d1e0b4c-0000-4000-8000-000000000000", `echo 1`, time.Minute)
		if !errors.Is(err, nomad.ErrCheckNotRun) {
			t.Fatalf("check on no node: %v", err)
		}
		if waited := time.Since(start); waited > 30*time.Second {
			t.Errorf("took %s to give up on an unplaceable check", waited)
		}
		gone(t, "check-nowhere")
	})

	t.Run("TimeoutNotRunAndNoRenters", func(t *testing.T) {
		done := make(chan error, 1)
		go func() {
			_, err := s.RunCheck(ctx, "check-slow", node, `sleep 60`, 10*time.Second)
			done <- err
		}()
		// While it runs, the check is in Nomad but no renter's job.
		for {
			if _, _, err := srv.Client.Jobs().Info("check-slow", &api.QueryOptions{Namespace: nomad.CheckNamespace}); err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatal("the check job never showed up")
			}
			time.Sleep(100 * time.Millisecond)
		}
		if jobs, err := s.RenterJobs(ctx); err != nil || len(jobs) != 0 {
			t.Errorf("renters' jobs: %v %v", jobs, err)
		}
		if err := <-done; !errors.Is(err, nomad.ErrCheckNotRun) {
			t.Fatalf("slow check: %v", err)
		}
		gone(t, "check-slow")
	})
}
