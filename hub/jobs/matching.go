package jobs

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/agent/agentapi"
	"github.com/spiceroute/spiceroute/hub/admission"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
	"github.com/spiceroute/spiceroute/scheduler/nomad"
)

// Matching: which contributors' machines a job may land on, told to Nomad
// as constraints and affinities; Nomad's bin packing does the rest.
//
//   - Price. A job accepts the hub's CPU price, or the most it states in
//     meta spiceroute_max_cpu_price (SP per core-hour). It may land only on
//     machines whose floor (node meta spiceroute_floor_cpu_core_hour, µSP
//     per core-hour) is at or below what it accepts: a constraint
//     `${meta.spiceroute_floor_cpu_core_hour} <= <accepted µSP>` (Nomad
//     compares integers as integers). Each allocation pays the hub's price,
//     or its machine's floor where that is higher (market.Quote.CPUPrice),
//     and the hold covers the accepted price. When ready machines exist but
//     none is cheap enough, the job is refused before anything is held,
//     with the cheapest floor in the message.
//   - Latency. A job states the region it prefers in meta spiceroute_region:
//     an affinity (weight 100) for machines in that region, and a second
//     (weight 50) for machines that measured under NearRTT to it (node meta
//     spiceroute_rtt_ms_<region>, which agents measure and the hub
//     publishes). A job that must stay in a region says so with its own
//     constraint on ${meta.spiceroute_region}.
const (
	MetaMaxCPUPrice  = "spiceroute_max_cpu_price"
	MetaPreferRegion = "spiceroute_region"
)

// NearRTT is the round-trip time under which a machine counts as near a
// region (milliseconds).
const NearRTT = 50

// CodeNoMatch refuses a job that no ready machine would take at its price.
const CodeNoMatch coded.Code = "no_match"

// matchTargets are the node attributes matching constrains on.
var (
	floorTarget  = "${meta." + agentapi.MetaFloorCPU + "}"
	regionTarget = "${meta." + agentapi.MetaRegion + "}"
)

// accepted is the CPU price the job accepts: its stated maximum, or the
// hub's price. A maximum under the hub's price is refused.
func accepted(j *api.Job, hub ledger.Amount) (ledger.Amount, error) {
	v, ok := j.Meta[MetaMaxCPUPrice]
	if !ok {
		return hub, nil
	}
	a, err := ledger.ParseAmount(v)
	if err != nil || a <= 0 {
		return 0, coded.Errorf(admission.CodeViolation, "meta %s: %q is not a positive price in SP per core-hour (e.g. \"0.05\")", MetaMaxCPUPrice, v)
	}
	if a < hub {
		return 0, coded.Errorf(market.CodeOverMaxPrice, "the hub's CPU price is %s SP per core-hour, more than your maximum %s (meta %s)",
			hub.SP(), a.SP(), MetaMaxCPUPrice)
	}
	return a, nil
}

// match checks that some ready machine takes the job at the price it
// accepts, and adds matching's constraints and affinities to it.
func (s *Service) match(ctx context.Context, j *api.Job, acceptedCPU ledger.Amount) error {
	prefer := j.Meta[MetaPreferRegion]
	if prefer != "" {
		if err := agentapi.ValidRegion(prefer); err != nil {
			return coded.Errorf(admission.CodeViolation, "meta %s: %v", MetaPreferRegion, err)
		}
	}
	offers, err := s.Sched.Offers(ctx)
	if err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	pinned := nomad.JobRegion(j)
	var cheapest *nomad.Offer
	fits := false
	for i, o := range offers {
		if pinned != "" && o.Region != pinned {
			continue
		}
		if ledger.Amount(o.FloorCPU) <= acceptedCPU {
			fits = true
			break
		}
		if cheapest == nil || o.FloorCPU < cheapest.FloorCPU {
			cheapest = &offers[i]
		}
	}
	if !fits && cheapest != nil {
		where := ""
		if pinned != "" {
			where = " in region " + pinned
		}
		region := cheapest.Region
		if region == "" {
			region = "no region"
		}
		return coded.Errorf(CodeNoMatch, "no contributor at or below %s SP/core-hour%s; cheapest is %s (%s)",
			acceptedCPU.SP(), where, ledger.Amount(cheapest.FloorCPU).SP(), region)
	}
	// With no ready machine at all the job waits in Nomad's queue, and its
	// status says why it is not placed.
	j.Constraints = slices.DeleteFunc(j.Constraints, func(c *api.Constraint) bool { return c != nil && c.LTarget == floorTarget })
	j.Constraints = append(j.Constraints, &api.Constraint{LTarget: floorTarget, Operand: "<=", RTarget: strconv.FormatInt(int64(acceptedCPU), 10)})
	if prefer != "" {
		j.Affinities = append(j.Affinities,
			&api.Affinity{LTarget: regionTarget, Operand: "=", RTarget: prefer, Weight: ptr(int8(100))},
			&api.Affinity{LTarget: "${meta." + agentapi.MetaRTTPrefix + prefer + "}", Operand: "<", RTarget: strconv.Itoa(NearRTT), Weight: ptr(int8(50))})
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
