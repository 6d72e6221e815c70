package jobs_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/spiceroute/spiceroute/agent/agentapi"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/jobs"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
	"github.com/spiceroute/spiceroute/scheduler/nomadtest"
)

// floorOf makes the agent's client node ask floor µSP per core-hour, in
// region eu-west.
func floorOf(floor ledger.Amount) nomadtest.Option {
	return func(c *nomadtest.Config) {
		c.Meta[agentapi.MetaFloorCPU] = fmt.Sprint(int64(floor))
		c.Meta[agentapi.MetaRegion] = "eu-west"
	}
}

// TestMatchingByPriceFloor runs against one contributor machine whose
// floor is twice the hub's CPU price: a job that accepts the hub's price is
// refused before anything is held, with the cheapest floor in words; a job
// that accepts more lands there, pays the machine's floor for CPU (not its
// maximum), and the books balance.
func TestMatchingByPriceFloor(t *testing.T) {
	floor := 2 * testPrices.CPU
	e := newEnv(t, floorOf(floor))
	e.setPrices()
	e.settling()
	const funds = 100 * ledger.MicroPerSpice
	alice := e.renter("alice", funds)
	ctx := context.Background()

	t.Run("CheaperThanAnyoneRefused", func(t *testing.T) {
		_, err := e.svc.Submit(ctx, "alice", alice, e.helloJob())
		want := fmt.Sprintf("no contributor at or below 36 SP/core-hour; cheapest is 72 (eu-west)")
		if coded.CodeOf(err) != jobs.CodeNoMatch || err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want %s: %q", err, jobs.CodeNoMatch, want)
		}
		e.noJob("alice", "hello")
		if a := e.account(alice); a.Balance() != funds || a.DebitsPending != 0 {
			t.Fatalf("a refused job moved money: %+v", a)
		}
	})

	t.Run("MaxUnderHubPriceRefused", func(t *testing.T) {
		j := e.helloJob()
		j.Meta[jobs.MetaMaxCPUPrice] = "10"
		if _, err := e.svc.Submit(ctx, "alice", alice, j); coded.CodeOf(err) != market.CodeOverMaxPrice {
			t.Fatalf("a maximum under the hub's price: %v", err)
		}
	})

	t.Run("PaysTheFloor", func(t *testing.T) {
		j := e.helloJob()
		j.Meta[jobs.MetaMaxCPUPrice] = "100"
		j.Meta[jobs.MetaPreferRegion] = "eu-west"
		adm, err := e.svc.Submit(ctx, "alice", alice, j)
		if err != nil {
			t.Fatal(err)
		}
		if adm.Quote.AcceptedCPU != 100*ledger.MicroPerSpice || adm.Quote.Prices.CPU != testPrices.CPU {
			t.Fatalf("quote %+v", adm.Quote)
		}
		reg, err := e.sched.Job(ctx, "alice", "hello")
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, c := range reg.Constraints {
			found = found || (c.LTarget == "${meta."+agentapi.MetaFloorCPU+"}" && c.Operand == "<=" && c.RTarget == "100000000")
		}
		if !found || len(reg.Affinities) != 2 {
			t.Fatalf("registered job lacks matching: constraints %v affinities %v", reg.Constraints, reg.Affinities)
		}
		rec := e.waitAdmission("alice", "hello", settled)
		at := testPrices
		at.CPU = floor
		want := expectedCostAt(t, e.onlyAlloc("alice", "hello"), at)
		e.checkSettled(rec, alice, funds, want)
	})
}
