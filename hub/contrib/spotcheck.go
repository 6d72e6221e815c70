package contrib

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spiceroute/spiceroute/hub/ledger"
)

// Spot checks
//
// A contributor could sell work its machine does not do: return made-up
// results, or run renters' programs on something other than what it
// declared. Every SpotCheckConfig.Interval, the hub picks each machine
// whose Nomad node takes work with probability SpotCheckConfig.Fraction
// and sends it a known check job (CheckProgram): a few rounds of integer
// arithmetic in the POSIX shell, from a fresh random nonce, whose answer
// the hub computes itself. The job runs in the hub's own Nomad namespace
// (never billed, never a renter's), pinned to the machine's node.
//
//   - The right answer, exit code 0: the check passed; nothing is
//     recorded.
//   - A wrong answer, or a task that ran and exited non-zero: the check
//     failed. An incident of kind IncidentSpotCheckFailed is recorded
//     (which costs the machine 50 points of reputation, see Reputation),
//     and its owner's payout for the period of the check is withheld
//     pending an operator's review.
//   - No answer (the check could not be placed, the node went away, the
//     task did not start or did not finish in time): nothing is held
//     against the contributor; the hub logs it.

// Kinds of incidents (machine_incidents).
const (
	IncidentDispute         = "dispute"
	IncidentSpotCheckFailed = "spot_check_failed"
)

// SpotCheckConfig configures spot checks.
type SpotCheckConfig struct {
	// Interval is the time between rounds (default DefaultSpotCheckInterval).
	Interval time.Duration
	// Fraction is the probability that a round checks a given machine
	// whose node takes work, 0 to 1. 0 runs no rounds (Check still
	// works).
	Fraction float64
	// Timeout bounds one check, from registering its job to reading its
	// output (default 2m: the exec driver builds the task's chroot first).
	Timeout time.Duration
	// Parallel is how many checks of a round run at once (default 8).
	Parallel int
}

// Spot check defaults for `spice hub`.
const (
	DefaultSpotCheckInterval = 10 * time.Minute
	DefaultSpotCheckFraction = 0.05
)

func (c SpotCheckConfig) withDefaults() SpotCheckConfig {
	if c.Interval <= 0 {
		c.Interval = DefaultSpotCheckInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Minute
	}
	if c.Parallel <= 0 {
		c.Parallel = 8
	}
	return c
}

// Validate checks the fraction.
func (c SpotCheckConfig) Validate() error {
	if !(c.Fraction >= 0 && c.Fraction <= 1) {
		return fmt.Errorf("contrib: spot check fraction %g is outside 0 to 1", c.Fraction)
	}
	return nil
}

// CheckRun is a check job whose task ran and exited.
type CheckRun struct {
	ExitCode int
	Stdout   string
}

// SpotCheckNomad is what spot checks ask of Nomad (*nomad.Scheduler
// through an adapter). Safe for concurrent use.
type SpotCheckNomad interface {
	// PoolNodes lists the nodes of the hub's node pool.
	PoolNodes(ctx context.Context) ([]Node, error)
	// RunCheck runs script with /bin/sh -c as batch job jobID in the hub's
	// own namespace, pinned to node nodeID; it blocks until the task has
	// exited or timeout has passed, and removes the job before it
	// returns. An error means the task did not run to its end (it could
	// not be placed, the node went away, it did not start or finish in
	// time, or Nomad could not be asked), whatever the node did.
	RunCheck(ctx context.Context, jobID, nodeID, script string, timeout time.Duration) (CheckRun, error)
}

// SpotCheckStore lists machines and records the checks they fail
// (*postgres.Store). Safe for concurrent use.
type SpotCheckStore interface {
	Machines(ctx context.Context, owner string) ([]*Machine, error)
	RecordIncident(ctx context.Context, id ledger.ID, kind, detail string) error
}

// PayoutWithholder withholds contributors' payouts (hub/payout through an
// adapter). Safe for concurrent use.
type PayoutWithholder interface {
	// WithholdPayout withholds owner's payout for the payout period that
	// contains at, until an operator releases it.
	WithholdPayout(ctx context.Context, owner string, at time.Time, reason, by string) error
}

// PayoutWithholderFunc adapts a function to PayoutWithholder.
type PayoutWithholderFunc func(ctx context.Context, owner string, at time.Time, reason, by string) error

func (f PayoutWithholderFunc) WithholdPayout(ctx context.Context, owner string, at time.Time, reason, by string) error {
	return f(ctx, owner, at, reason, by)
}

// SpotCheckedBy is who withholds a payout after a failed spot check.
const SpotCheckedBy = "spot-check"

// SpotChecker sends spot checks to contributors' machines. Safe for
// concurrent use.
type SpotChecker struct {
	Store SpotCheckStore
	Nomad SpotCheckNomad
	// Payouts withholds the payouts of owners whose machine failed a
	// check; nil when the hub makes no payouts (the incident is still
	// recorded).
	Payouts PayoutWithholder
	Config  SpotCheckConfig
	// Rand returns a number in [0, 1) for each machine a round considers
	// (default math/rand/v2's Float64); a machine is checked when it is
	// under Fraction. The checks' nonces always come from crypto/rand.
	Rand   func() float64
	Logger *slog.Logger
	Now    func() time.Time
}

func (c *SpotChecker) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *SpotChecker) log() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// SpotCheckOutcome is how a spot check ended.
type SpotCheckOutcome string

const (
	SpotCheckPassed SpotCheckOutcome = "passed"
	SpotCheckFailed SpotCheckOutcome = "failed"
	// SpotCheckNotRun: the check produced no answer, which is not held
	// against the contributor.
	SpotCheckNotRun SpotCheckOutcome = "not_run"
)

// SpotCheck is one check of a machine.
type SpotCheck struct {
	Machine  ledger.ID        `json:"machine"`
	Owner    string           `json:"owner"`
	NodeID   string           `json:"node_id"`
	JobID    string           `json:"job_id"`
	Nonce    string           `json:"nonce"`
	Outcome  SpotCheckOutcome `json:"outcome"`
	Expected string           `json:"expected"`
	// Got and ExitCode are what the task printed and how it exited, when
	// it ran.
	Got      string `json:"got,omitempty"`
	ExitCode int    `json:"exit_code,omitempty"`
	// Reason says why a check did not run.
	Reason string `json:"reason,omitempty"`
	// Withheld is set when the owner's payout was withheld for it.
	Withheld bool      `json:"withheld,omitempty"`
	At       time.Time `json:"at"`
}

// maxGot bounds how much of a wrong answer is kept in incidents and
// withhold reasons.
const maxGot = 64

// Check sends one spot check to machine m's node and acts on its result
// (see SpotChecker). The error reports what the hub failed to record; a
// check that did not run is an outcome, not an error.
func (c *SpotChecker) Check(ctx context.Context, m *Machine) (SpotCheck, error) {
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return SpotCheck{}, fmt.Errorf("contrib: spot check nonce: %w", err)
	}
	p := NewCheckProgram(nonce)
	sc := SpotCheck{Machine: m.ID, Owner: m.Owner, NodeID: m.NodeID, JobID: "spot-check-" + hex.EncodeToString(m.ID[:4]) + "-" + hex.EncodeToString(nonce[:]),
		Nonce: hex.EncodeToString(nonce[:]), Expected: p.Expected(), At: c.now()}
	log := c.log().With("machine", m.ID, "owner", m.Owner, "node", m.NodeID, "check", sc.JobID)
	if m.NodeID == "" {
		sc.Outcome, sc.Reason = SpotCheckNotRun, "the machine has no Nomad node yet"
		return sc, nil
	}
	run, err := c.Nomad.RunCheck(ctx, sc.JobID, m.NodeID, p.Script(), c.Config.withDefaults().Timeout)
	if err != nil {
		sc.Outcome, sc.Reason = SpotCheckNotRun, err.Error()
		if ctx.Err() == nil {
			log.Info("contrib: spot check did not run; nothing held against the machine", "err", err)
		}
		return sc, nil
	}
	sc.Got, sc.ExitCode = run.Stdout, run.ExitCode
	if len(sc.Got) > maxGot {
		sc.Got = sc.Got[:maxGot]
	}
	if run.ExitCode == 0 && strings.TrimSpace(run.Stdout) == sc.Expected {
		sc.Outcome = SpotCheckPassed
		log.Info("contrib: spot check passed")
		return sc, nil
	}
	sc.Outcome = SpotCheckFailed
	log.Warn("contrib: spot check failed", "nonce", sc.Nonce, "expected", sc.Expected, "got", sc.Got, "exit_code", sc.ExitCode)
	detail := fmt.Sprintf("spot check %s on node %s: nonce %s: expected %q, got %q, exit code %d", sc.JobID, m.NodeID, sc.Nonce, sc.Expected, sc.Got, sc.ExitCode)
	// Recorded whatever ctx says: the machine has answered.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var errs []error
	if err := c.Store.RecordIncident(rctx, m.ID, IncidentSpotCheckFailed, detail); err != nil {
		errs = append(errs, fmt.Errorf("contrib: machine %s: recording failed spot check %s: %w", m.ID, sc.JobID, err))
	}
	if c.Payouts == nil {
		log.Warn("contrib: payouts are off on this hub; the failed spot check is recorded only")
	} else {
		reason := fmt.Sprintf("machine %s (%s) failed spot check %s: expected %q, got %q (exit code %d); withheld pending review",
			m.ID, m.NodeName, sc.JobID, sc.Expected, sc.Got, sc.ExitCode)
		if err := c.Payouts.WithholdPayout(rctx, m.Owner, sc.At, reason, SpotCheckedBy); err != nil {
			errs = append(errs, fmt.Errorf("contrib: withholding %s's payout after spot check %s: %w", m.Owner, sc.JobID, err))
		} else {
			sc.Withheld = true
		}
	}
	return sc, errors.Join(errs...)
}

// Round checks each machine whose node takes work (ready, eligible, not
// draining) with probability Config.Fraction, up to Config.Parallel at
// once, and returns the checks it made. The error joins what went wrong.
func (c *SpotChecker) Round(ctx context.Context) ([]SpotCheck, error) {
	cfg := c.Config.withDefaults()
	if cfg.Fraction <= 0 {
		return nil, nil
	}
	ms, err := c.Store.Machines(ctx, "")
	if err != nil {
		return nil, err
	}
	nodes, err := c.Nomad.PoolNodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("contrib: spot checks: %w", err)
	}
	ready := map[string]bool{}
	for _, n := range nodes {
		ready[n.ID] = n.Status == "ready" && n.Eligible && !n.Draining
	}
	roll := c.Rand
	if roll == nil {
		roll = mrand.Float64
	}
	var picked []*Machine
	for _, m := range ms {
		if m.NodeID != "" && ready[m.NodeID] && roll() < cfg.Fraction {
			picked = append(picked, m)
		}
	}
	out := make([]SpotCheck, len(picked))
	errs := make([]error, len(picked))
	sem := make(chan struct{}, cfg.Parallel)
	var wg sync.WaitGroup
	for i, m := range picked {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i], errs[i] = c.Check(ctx, m)
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// Run makes a Round every Config.Interval until ctx is done; with a zero
// Fraction it returns at once. Failures are logged.
func (c *SpotChecker) Run(ctx context.Context) error {
	cfg := c.Config.withDefaults()
	if cfg.Fraction <= 0 {
		return nil
	}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := c.Round(ctx); err != nil && ctx.Err() == nil {
				c.log().Warn("contrib: spot checks", "err", err)
			}
		}
	}
}

// CheckRounds is how many rounds of arithmetic a check program makes.
const CheckRounds = 16

// CheckProgram is a spot check's computation, derived from its nonce:
// starting from Seed, CheckRounds times x ← (x × Mul[i] + Add[i]) mod Mod,
// then the final x printed in decimal. Every value is under 2³¹, so no
// product reaches 2⁶³ and a POSIX shell's signed 64-bit arithmetic
// ($((...)), POSIX.1-2017 XCU §2.6.4) computes it exactly.
//
// The parameters are 64-bit big-endian words: word i is the first 8 bytes
// of SHA-256("spiceroute/spot-check/v1\x00" || nonce || uint32be(i)).
// Mod is 2³⁰ + word 0 mod 2³⁰; Seed is word 1 mod Mod; Mul[i] is 2 + word
// 2+2i mod (Mod−2) and Add[i] word 3+2i mod Mod.
type CheckProgram struct {
	Nonce     [16]byte
	Mod, Seed uint64
	Mul, Add  [CheckRounds]uint64
}

// NewCheckProgram derives the program of a nonce.
func NewCheckProgram(nonce [16]byte) CheckProgram {
	word := func(i uint32) uint64 {
		h := sha256.New()
		h.Write([]byte("spiceroute/spot-check/v1\x00"))
		h.Write(nonce[:])
		h.Write(binary.BigEndian.AppendUint32(nil, i))
		return binary.BigEndian.Uint64(h.Sum(nil))
	}
	p := CheckProgram{Nonce: nonce}
	p.Mod = 1<<30 + word(0)%(1<<30)
	p.Seed = word(1) % p.Mod
	for i := range CheckRounds {
		p.Mul[i] = 2 + word(uint32(2+2*i))%(p.Mod-2)
		p.Add[i] = word(uint32(3+2*i)) % p.Mod
	}
	return p
}

// Script is the program as a POSIX shell script: only assignments,
// arithmetic expansion and echo, all built into /bin/sh.
func (p CheckProgram) Script() string {
	var b strings.Builder
	b.WriteString("x=" + strconv.FormatUint(p.Seed, 10))
	for i := range CheckRounds {
		// $x, never ${x}: Nomad interpolates ${...} in a task's config.
		fmt.Fprintf(&b, "; x=$(( ($x * %d + %d) %% %d ))", p.Mul[i], p.Add[i], p.Mod)
	}
	b.WriteString(`; echo "$x"`)
	return b.String()
}

// Expected is the answer the script prints (without its newline).
func (p CheckProgram) Expected() string {
	x := p.Seed
	for i := range CheckRounds {
		x = (x*p.Mul[i] + p.Add[i]) % p.Mod
	}
	return strconv.FormatUint(x, 10)
}
