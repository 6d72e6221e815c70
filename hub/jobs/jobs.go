// Package jobs admits renters' jobs: a job is checked against the hub's
// admission policy, quoted at the current prices for its maximum runtime,
// its quote is held on the renter's account, and only then is it registered
// with Nomad, in the renter's namespace and the hub's node pool. A job that
// fails any step never reaches Nomad.
//
// Every step is idempotent: the hold's ID is derived from the renter, the job
// ID and the job's content, so a retried submission (after a timeout or a hub
// crash between the hold and the registration) finds the same hold instead
// of holding twice. A hold that never gets its job registered expires at
// its timeout, and the funds return to the renter.
package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/hub/admission"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
	"github.com/spiceroute/spiceroute/hub/settle"
	"github.com/spiceroute/spiceroute/scheduler/nomad"
)

// Meta keys the hub writes on registered jobs.
const (
	MetaHold     = "spiceroute_hold"      // the ledger hold paying for the job
	MetaQuote    = "spiceroute_quote_usp" // its quoted maximum, µSP
	MetaAccount  = "spiceroute_account"   // the renter account paying
	MetaAdmitted = "spiceroute_admission" // the admission key
)

// HoldGrace is how long a hold outlives the job's maximum runtime, so that
// a crashed hub never leaves funds reserved for ever.
const HoldGrace = time.Hour

// Ledger is the part of the ledger admission uses.
type Ledger interface {
	CreateTransfers(ctx context.Context, c ledger.Caller, ts []ledger.Transfer) ([]ledger.TransferResult, error)
}

// Prices gives the unit prices in force.
type Prices interface {
	Prices(ctx context.Context) (market.Prices, error)
}

// Service admits jobs. Safe for concurrent use.
type Service struct {
	Sched    *nomad.Scheduler
	Ledger   Ledger
	Prices   Prices
	Policy   *admission.Policy
	Accounts settle.Accounts
}

// Admission is an admitted job.
type Admission struct {
	JobID     string       `json:"job_id"`
	Namespace string       `json:"namespace"`
	Key       string       `json:"admission_key"`
	Quote     market.Quote `json:"quote"`
	Hold      ledger.ID    `json:"hold"`
	EvalID    string       `json:"eval_id"`
}

// Key is a submission's admission key: the first 16 bytes, in hex, of
// SHA-256(renter 0 job ID 0 canonical job JSON).
func Key(renter string, j *api.Job) (string, error) {
	b, err := json.Marshal(j)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", renter, str(j.ID))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)[:16]), nil
}

// Submit admits and registers renter's job, paid from account.
func (s *Service) Submit(ctx context.Context, renter string, account ledger.ID, j *api.Job) (*Admission, error) {
	if j.ID == nil || *j.ID == "" {
		return nil, coded.New(admission.CodeViolation, "the job has no ID")
	}
	if err := s.Sched.EnsureRenter(ctx, renter); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	s.Sched.Prepare(renter, j)
	for _, k := range []string{MetaHold, MetaQuote, MetaAccount, MetaAdmitted} {
		delete(j.Meta, k) // the hub's to write, never the renter's
	}
	aj := nomad.AdmissionJob(j)
	usage, err := s.usage(ctx, renter, *j.ID)
	if err != nil {
		return nil, err
	}
	if err := s.Policy.Check(&aj, usage); err != nil {
		return nil, err
	}
	runtime, err := s.Policy.Runtime(&aj)
	if err != nil {
		return nil, err
	}
	var maxPrice ledger.Amount
	if v, ok := j.Meta[admission.MetaMaxPrice]; ok {
		if maxPrice, err = ledger.ParseAmount(v); err != nil {
			return nil, coded.Errorf(admission.CodeViolation, "meta %s: %v", admission.MetaMaxPrice, err)
		}
	}
	prices, err := s.Prices.Prices(ctx)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	tot := aj.Totals()
	quote, err := market.NewQuote(prices, market.Resources{CPUMHz: int64(tot.CPUMHz), MemoryMB: int64(tot.MemoryMB), DiskMB: int64(tot.DiskMB)}, runtime, maxPrice)
	if err != nil {
		return nil, err
	}
	if quote.Max <= 0 {
		return nil, coded.New(admission.CodeViolation, "the job asks for no resources")
	}
	key, err := Key(renter, j)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	hold := settle.HoldTransfer(key, account, quote.Max, s.Accounts, uint32((runtime+HoldGrace)/time.Second))
	res, err := s.Ledger.CreateTransfers(ctx, ledger.Caller{Principal: renter}, []ledger.Transfer{hold})
	if err != nil {
		return nil, fmt.Errorf("jobs: hold: %w", err)
	}
	if e := res[0].Err; e != nil {
		if e.Code == ledger.CodeInsufficientFunds {
			return nil, coded.Errorf(ledger.CodeInsufficientFunds, "job %s costs up to %s (%s at the current prices); your account cannot cover it: %s",
				*j.ID, quote.Max, runtime, e.Message)
		}
		return nil, e
	}
	if j.Meta == nil {
		j.Meta = map[string]string{}
	}
	j.Meta[MetaHold] = hold.ID.String()
	j.Meta[MetaQuote] = fmt.Sprint(int64(quote.Max))
	j.Meta[MetaAccount] = account.String()
	j.Meta[MetaAdmitted] = key
	reg, err := s.Sched.Register(ctx, renter, j)
	if err != nil {
		return nil, s.release(ctx, key, hold.ID, err)
	}
	return &Admission{JobID: *j.ID, Namespace: s.Sched.Namespace(renter), Key: key, Quote: quote, Hold: hold.ID, EvalID: reg.EvalID}, nil
}

// release voids the hold of a job Nomad did not take, and returns cause.
func (s *Service) release(ctx context.Context, key string, hold ledger.ID, cause error) error {
	res, err := s.Ledger.CreateTransfers(ctx, ledger.System, []ledger.Transfer{{ID: settle.ID(key, 1, "void"), PendingID: hold, Flags: ledger.VoidPending, Code: settle.CodePostHold}})
	if err == nil && res[0].Err != nil {
		err = res[0].Err
	}
	if err != nil {
		return fmt.Errorf("jobs: %w (and releasing hold %s failed: %v; it expires at its timeout)", cause, hold, err)
	}
	return fmt.Errorf("jobs: %w", cause)
}

// usage is what the renter already runs, the job being replaced excluded.
func (s *Service) usage(ctx context.Context, renter, replacing string) (admission.Usage, error) {
	var u admission.Usage
	stubs, err := s.Sched.Jobs(ctx, renter)
	if err != nil {
		return u, err
	}
	for _, st := range stubs {
		if st.ID == replacing || st.Stop || st.Status == "dead" {
			continue
		}
		j, err := s.Sched.Job(ctx, renter, st.ID)
		if err != nil {
			return u, err
		}
		aj := nomad.AdmissionJob(j)
		t := aj.Totals()
		u.Jobs++
		u.CPUMHz += t.CPUMHz
		u.MemoryMB += t.MemoryMB
	}
	return u, nil
}

func str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
