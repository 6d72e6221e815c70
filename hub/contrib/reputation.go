package contrib

import (
	"context"
	"fmt"
	"time"

	"github.com/spiceroute/spiceroute/hub/ledger"
)

// Reputation is a machine's score with the reasons for every point it
// lost. The score is computed, never stored: anyone with the same inputs
// gets the same number.
//
// # The score
//
// A machine starts at 100 and loses
//
//   - up to 40 for downtime: 40 × (1 − uptime), where uptime is the
//     heartbeats the hub received over the last UptimeWindow (or since the
//     join, if later) divided by those it expected at the heartbeat
//     interval, at most 1;
//   - up to 30 for lost work: 30 × lost ÷ allocations, counting the
//     allocations Nomad placed on the machine's node that ended (complete,
//     failed or lost); a lost allocation is one Nomad gave up on because
//     the node went away, and the renter was not charged for it;
//   - up to 5 for failed work: 5 × failed ÷ allocations (a failure is often
//     the renter's own program, so it weighs little);
//   - up to 20 for benchmark drift: when the latest re-check is slower than
//     the join benchmark by more than DriftTolerance (CPU or memory,
//     whichever is worse), 20 × (slowdown − 10 %) ÷ 40 %, in full at a 50 %
//     slowdown: a machine that benchmarked fast at join and then serves
//     slowly is selling what it does not deliver;
//   - 15 for each dispute upheld against it, and 50 for each failed spot
//     check (a known job whose result came back wrong).
//
// The score is floored at 0. Machines under the hub's threshold (Config
// MinScore, default 50) get no new work: their Nomad node is made
// ineligible until the score recovers.
type Reputation struct {
	Score    int  `json:"score"`
	Eligible bool `json:"eligible"`
	// UptimeBP is uptime in basis points (10000 = always up).
	UptimeBP         int64    `json:"uptime_bp"`
	Completed        int64    `json:"completed"`
	Failed           int64    `json:"failed"`
	Lost             int64    `json:"lost"`
	SlowdownBP       int64    `json:"slowdown_bp"`
	Disputes         int64    `json:"disputes"`
	SpotChecksFailed int64    `json:"spot_checks_failed"`
	Reasons          []string `json:"reasons"`
}

// Inputs are what a machine's reputation is computed from.
type Inputs struct {
	// Beats received and Expected over the uptime window.
	Beats, Expected         int64
	Completed, Failed, Lost int64
	// SlowdownBP is how much slower, in basis points, the latest benchmark
	// re-check is than the join benchmark (0 if faster or none).
	SlowdownBP       int64
	Disputes         int64
	SpotChecksFailed int64
}

// Score weights and limits (see Reputation).
const (
	UptimeWindow     = 7 * 24 * time.Hour
	DriftToleranceBP = 1000 // 10 %
	DriftFullBP      = 5000 // 50 %
	DefaultMinScore  = 50
)

// Score computes a reputation from its inputs; minScore is the threshold
// for new work.
func Score(in Inputs, minScore int) Reputation {
	r := Reputation{Completed: in.Completed, Failed: in.Failed, Lost: in.Lost, SlowdownBP: in.SlowdownBP,
		Disputes: in.Disputes, SpotChecksFailed: in.SpotChecksFailed, UptimeBP: 10000, Reasons: []string{}}
	// Points are counted in hundredths to keep every step exact.
	lost := int64(0)
	take := func(centi int64, why string, args ...any) {
		if centi <= 0 {
			return
		}
		lost += centi
		r.Reasons = append(r.Reasons, fmt.Sprintf("-%d.%02d: ", centi/100, centi%100)+fmt.Sprintf(why, args...))
	}
	if in.Expected > 0 {
		beats := min(in.Beats, in.Expected)
		r.UptimeBP = beats * 10000 / in.Expected
		take(40*100*(10000-r.UptimeBP)/10000, "up %d.%02d%% of the time (%d of %d heartbeats)", r.UptimeBP/100, r.UptimeBP%100, beats, in.Expected)
	}
	if n := in.Completed + in.Failed + in.Lost; n > 0 {
		take(30*100*in.Lost/n, "%d of %d allocations lost (the machine went away)", in.Lost, n)
		take(5*100*in.Failed/n, "%d of %d allocations failed", in.Failed, n)
	}
	if in.SlowdownBP > DriftToleranceBP {
		over := min(in.SlowdownBP, DriftFullBP) - DriftToleranceBP
		take(20*100*over/(DriftFullBP-DriftToleranceBP), "benchmark re-check %d.%02d%% slower than at join", in.SlowdownBP/100, in.SlowdownBP%100)
	}
	take(15*100*in.Disputes, "%d upheld disputes", in.Disputes)
	take(50*100*in.SpotChecksFailed, "%d failed spot checks", in.SpotChecksFailed)
	// Round the points lost up: a machine at 49.5 is under 50.
	r.Score = int(max(0, 100-(lost+99)/100))
	r.Eligible = r.Score >= minScore
	return r
}

// ReputationStore reads what reputations are computed from
// (*postgres.Store). Safe for concurrent use.
type ReputationStore interface {
	// Uptime returns the heartbeats a machine sent since a time.
	Uptime(ctx context.Context, id ledger.ID, since time.Time) (int64, error)
	// Outcomes counts the ended allocations on a Nomad node by outcome.
	Outcomes(ctx context.Context, nodeID string) (completed, failed, lost int64, err error)
	// Incidents counts upheld disputes and failed spot checks.
	Incidents(ctx context.Context, id ledger.ID) (disputes, spotChecksFailed int64, err error)
}

// Reputation computes a machine's reputation now.
func (s *Service) Reputation(ctx context.Context, m *Machine) (Reputation, error) {
	rs, ok := s.Store.(ReputationStore)
	if !ok {
		return Reputation{}, fmt.Errorf("contrib: the store keeps no reputation inputs")
	}
	cfg := s.cfg()
	now := s.now()
	since := now.Add(-UptimeWindow)
	if m.JoinedAt.After(since) {
		since = m.JoinedAt
	}
	var in Inputs
	var err error
	// The hour the machine joined counts from its join; beats are counted
	// per hour, so the window starts at the hour.
	if in.Beats, err = rs.Uptime(ctx, m.ID, since); err != nil {
		return Reputation{}, err
	}
	// A heartbeat is expected every interval, allowing one missed.
	in.Expected = int64(now.Sub(since)/cfg.HeartbeatInterval) - 1
	if in.Expected < 0 {
		in.Expected = 0
	}
	if m.NodeID != "" {
		if in.Completed, in.Failed, in.Lost, err = rs.Outcomes(ctx, m.NodeID); err != nil {
			return Reputation{}, err
		}
	}
	if m.LastBenchmark != nil {
		in.SlowdownBP = max(slowdownBP(m.JoinBenchmark.CPUScore, m.LastBenchmark.CPUScore), slowdownBP(m.JoinBenchmark.MemoryMBps, m.LastBenchmark.MemoryMBps))
	}
	if in.Disputes, in.SpotChecksFailed, err = rs.Incidents(ctx, m.ID); err != nil {
		return Reputation{}, err
	}
	return Score(in, cfg.MinScore), nil
}

// slowdownBP is how much slower now is than then, in basis points (0 when
// not slower).
func slowdownBP(then, now float64) int64 {
	if then <= 0 || now >= then {
		return 0
	}
	return int64((then - now) / then * 10000)
}

// Enforce applies every machine's reputation to its node: a machine under
// the threshold is made ineligible for new work, and one that recovered
// (and whose owner's window is open) eligible again. It returns the first
// error and goes on with the other machines.
func (s *Service) Enforce(ctx context.Context) error {
	ms, err := s.Store.Machines(ctx, "")
	if err != nil {
		return err
	}
	var first error
	for _, m := range ms {
		if m.NodeID == "" {
			continue
		}
		r, err := s.Reputation(ctx, m)
		if err == nil && r.Eligible == m.Excluded {
			if !r.Eligible {
				s.log().Warn("contrib: reputation under the threshold; no new work", "machine", m.ID, "score", r.Score, "reasons", r.Reasons)
				err = s.Nomad.SetEligible(ctx, m.NodeID, false)
			} else if m.Available {
				s.log().Info("contrib: reputation recovered; node eligible", "machine", m.ID, "score", r.Score)
				err = s.Nomad.SetEligible(ctx, m.NodeID, true)
			}
			if err == nil {
				err = s.Store.SetExcluded(ctx, m.ID, !r.Eligible)
			}
		}
		if err != nil && first == nil {
			first = fmt.Errorf("contrib: machine %s: %w", m.ID, err)
		}
	}
	return first
}

// RunEnforcement applies reputations (Enforce) every interval until ctx is
// done. Failures are logged and retried at the next round.
func (s *Service) RunEnforcement(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := s.Enforce(ctx); err != nil && ctx.Err() == nil {
				s.log().Warn("contrib: applying reputations", "err", err)
			}
		}
	}
}
