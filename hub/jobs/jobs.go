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
	"errors"
	"fmt"
	"strings"
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

// Prices gives the unit prices in force in a region ("" the whole hub;
// a region without prices of its own has the hub-wide ones).
type Prices interface {
	PricesIn(ctx context.Context, region string) (market.Prices, error)
}

// Service admits jobs. Safe for concurrent use.
type Service struct {
	Sched    *nomad.Scheduler
	Ledger   Ledger
	Prices   Prices
	Policy   *admission.Policy
	Accounts Accounts
	Store    Store
	// Billing configures settlement and invoicing (Settle, RunSettlement).
	Billing Billing
	// Metrics times admission's phases (optional).
	Metrics *Metrics
}

// Accounts are the ledger accounts admission uses: the hub's escrow and
// commission accounts, and a lookup of a renter's own accounts.
type Accounts struct {
	settle.Accounts
	Owned func(ctx context.Context, owner string) ([]ledger.Account, error)
}

// Admission is an admitted job.
type Admission struct {
	JobID     string       `json:"job_id"`
	Namespace string       `json:"namespace"`
	Key       string       `json:"admission_key"`
	Quote     market.Quote `json:"quote"`
	Hold      ledger.ID    `json:"hold"`
	EvalID    string       `json:"eval_id"`

	// Nomad's registration response, for the gateway.
	EvalCreateIndex uint64 `json:"eval_create_index"`
	JobModifyIndex  uint64 `json:"job_modify_index"`
	Warnings        string `json:"warnings,omitempty"`
}

// Key is a submission's base key: the first 16 bytes, in hex, of
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
//
// The admission is recorded before its hold is placed and the hold before
// the job is registered, so a submission retried after a timeout or a hub
// crash finds the open admission and completes it with the same hold; an
// admission whose job never reached Nomad is released by the settlement
// loop (see Service.Settle).
func (s *Service) Submit(ctx context.Context, renter string, account ledger.ID, j *api.Job) (*Admission, error) {
	ph := s.Metrics.start()
	c, err := s.check(ctx, renter, j)
	if err != nil {
		return nil, err
	}
	ph.mark(phCheck)
	rec, err := s.admission(ctx, renter, account, *j.ID, c.base, c.quote)
	if err != nil {
		return nil, err
	}
	if rec.Account != account {
		return nil, coded.Errorf(CodeAdmissionConflict, "job %s is being admitted already, paid from account %s", *j.ID, rec.Account)
	}
	ph.mark(phRecord)
	hold := settle.HoldTransfer(rec.Key, rec.Account, rec.Quote.Max, s.Accounts.Accounts, holdTimeout(rec.Quote))
	res, err := s.Ledger.CreateTransfers(ctx, ledger.Caller{Principal: renter}, []ledger.Transfer{hold})
	if err != nil {
		return nil, fmt.Errorf("jobs: hold: %w", err)
	}
	ph.mark(phHold)
	if e := res[0].Err; e != nil {
		if err := s.Store.SetAdmissionState(ctx, rec.Key, Released, "hold refused: "+e.Message); err != nil {
			return nil, fmt.Errorf("jobs: %w (and recording it failed: %v)", e, err)
		}
		if e.Code == ledger.CodeInsufficientFunds {
			return nil, coded.Errorf(ledger.CodeInsufficientFunds, "job %s costs up to %s (%s at the current prices); your account cannot cover it: %s",
				*j.ID, rec.Quote.Max, rec.Quote.MaxRuntime, e.Message)
		}
		return nil, e
	}
	sent := c.job
	if sent.Meta == nil {
		sent.Meta = map[string]string{}
	}
	sent.Meta[MetaHold] = hold.ID.String()
	sent.Meta[MetaQuote] = fmt.Sprint(int64(rec.Quote.Max))
	sent.Meta[MetaAccount] = rec.Account.String()
	sent.Meta[MetaAdmitted] = rec.Key
	reg, err := s.Sched.Register(ctx, renter, sent)
	ph.mark(phRegister)
	if err != nil {
		err = refused(err)
		if rerr := s.release(ctx, rec, "Nomad refused the job: "+err.Error()); rerr != nil {
			return nil, fmt.Errorf("jobs: %w (and releasing hold %s failed: %v; it is retried, and expires at its timeout)", err, hold.ID, rerr)
		}
		return nil, fmt.Errorf("jobs: %w", err)
	}
	if rec.State == Admitted {
		s.b().running.mark(rec.Key, s.Store.MarkRunning, s.log())
	}
	ph.done()
	return &Admission{JobID: *j.ID, Namespace: s.Sched.Namespace(renter), Key: rec.Key, Quote: rec.Quote, Hold: hold.ID,
		EvalID: reg.EvalID, EvalCreateIndex: reg.EvalCreateIndex, JobModifyIndex: reg.JobModifyIndex, Warnings: reg.Warnings}, nil
}

// refused turns Nomad's refusal of a job that fails its own validation
// (Nomad answers those with HTTP 500) into an invalid-job error the renter
// can act on; other errors are returned as they are.
func refused(err error) error {
	var ure api.UnexpectedResponseError
	// Nomad's job validation answers with a multierror ("1 error
	// occurred: * Task group g validation failed: ...").
	if errors.As(err, &ure) && (strings.Contains(ure.Body(), "validation failed") || strings.Contains(ure.Body(), "error occurred")) {
		return coded.Errorf(CodeInvalidJob, "Nomad refused the job: %s", strings.Join(strings.Fields(ure.Body()), " "))
	}
	return err
}

// CodeInvalidJob rejects a job Nomad's own validation refuses.
const CodeInvalidJob coded.Code = "invalid"

// CodeAdmissionConflict rejects a submission racing another of the same job.
const CodeAdmissionConflict coded.Code = "admission_conflict"

// admission returns the open admission of the submission base, or records
// a new one: the n-th run of the same spec gets key hash(base, n), so
// running a job again after it ended holds afresh.
func (s *Service) admission(ctx context.Context, renter string, account ledger.ID, jobID, base string, quote market.Quote) (*Record, error) {
	insert := func(n int) (*Record, error) {
		h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d", base, n)))
		key := hex.EncodeToString(h[:16])
		// A concurrent identical submission may insert first: use the stored one.
		return s.Store.InsertAdmission(ctx, &Record{Key: key, Base: base, Renter: renter, JobID: jobID, Account: account, Quote: quote, State: Admitted,
			Hold: settle.Hold{ID: settle.ID(key, 0, "hold"), Renter: account, Amount: quote.Max}})
	}
	// Most submissions are a spec's first: its first key is free, and one
	// statement records it. If the first key is taken and still open, it is
	// the spec's open admission (the n-th key exists only once the earlier
	// ones ended).
	if rec, err := insert(0); err != nil || rec.Open() {
		return rec, err
	}
	recs, err := s.Store.BaseAdmissions(ctx, base)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if r.Open() {
			return r, nil
		}
	}
	return insert(len(recs))
}

// holdTimeout is how long an admission hold lives: the job's maximum
// runtime and HoldGrace, so a hub that stopped for good never leaves the
// renter's funds reserved for ever.
func holdTimeout(q market.Quote) uint32 {
	return uint32((q.MaxRuntime + HoldGrace) / time.Second)
}

// Admit is Submit paid from the renter's own account: the first renter
// account the principal owns (or the one the job's meta
// spiceroute_pay_from names, if the renter owns it).
func (s *Service) Admit(ctx context.Context, renter string, j *api.Job) (*Admission, error) {
	account, err := s.payingAccount(ctx, renter, j.Meta[MetaPayFrom])
	if err != nil {
		return nil, err
	}
	return s.Submit(ctx, renter, account, j)
}

// MetaPayFrom names the renter account a job is paid from (optional).
const MetaPayFrom = "spiceroute_pay_from"

// CodeNoAccount rejects a job from a renter with no account to pay from.
const CodeNoAccount coded.Code = "no_renter_account"

func (s *Service) payingAccount(ctx context.Context, renter, want string) (ledger.ID, error) {
	pick := func(ids []ledger.ID) (ledger.ID, bool) {
		for _, id := range ids {
			if want == "" || id.String() == want {
				return id, true
			}
		}
		return ledger.ID{}, false
	}
	// An account's owner and kind never change, and accounts are never
	// deleted: the renter accounts read once stay the renter's. Only an
	// account created since is looked up again.
	if v, ok := s.b().payers.Load(renter); ok {
		if id, ok := pick(v.([]ledger.ID)); ok {
			return id, nil
		}
	}
	accts, err := s.Accounts.Owned(ctx, renter)
	if err != nil {
		return ledger.ID{}, fmt.Errorf("jobs: accounts of %s: %w", renter, err)
	}
	var ids []ledger.ID
	for _, a := range accts {
		if a.Kind == ledger.KindRenter {
			ids = append(ids, a.ID)
		}
	}
	if len(ids) > 0 {
		s.b().payers.Store(renter, ids)
	}
	if id, ok := pick(ids); ok {
		return id, nil
	}
	if want != "" {
		return ledger.ID{}, coded.Errorf(CodeNoAccount, "meta %s: %s is not a renter account of %s", MetaPayFrom, want, renter)
	}
	return ledger.ID{}, coded.Errorf(CodeNoAccount, "%s has no renter account to pay for jobs from; ask the hub's operator for one", renter)
}

// Plan checks renter's job against the policy and quotes it, as Submit
// would, then asks Nomad for a dry-run plan. Nothing is held or registered.
func (s *Service) Plan(ctx context.Context, renter string, j *api.Job, diff bool) (*api.JobPlanResponse, market.Quote, error) {
	c, err := s.check(ctx, renter, j)
	if err != nil {
		return nil, market.Quote{}, err
	}
	sent := c.job
	if diff {
		// The registered version carries the hub's meta keys; without them
		// here the diff would show them as removed, which a new
		// registration does not do (it writes them afresh).
		if cur, err := s.Sched.Job(ctx, renter, *j.ID); err == nil {
			for _, k := range hubMeta {
				if v, ok := cur.Meta[k]; ok {
					if sent.Meta == nil {
						sent.Meta = map[string]string{}
					}
					sent.Meta[k] = v
				}
			}
		} else if !nomad.IsNotFound(err) {
			return nil, market.Quote{}, fmt.Errorf("jobs: %w", err)
		}
	}
	plan, err := s.Sched.Plan(ctx, renter, sent, diff)
	return plan, c.quote, err
}

// hubMeta are the meta keys the hub writes on registered jobs.
var hubMeta = []string{MetaHold, MetaQuote, MetaAccount, MetaAdmitted}

// checked is a job that passed admission's checks.
type checked struct {
	quote   market.Quote
	runtime time.Duration
	// base is the submission's key (Key), taken before the hub adds its
	// matching constraints, whose prices move: a retry finds the same
	// admission whatever the prices did meanwhile.
	base string
	// job is what the hub sends Nomad: the renter's job as written, placed
	// in the renter's namespace and the hub's pool, with matching's
	// constraints. The checks read a canonicalized copy; Nomad fills in the
	// same defaults itself. (A canonicalized job once seemed to cost Nomad
	// 1.7x the CPU; that measurement was skewed by the jobs benchmark's
	// run order, and measured again the cost is the same.)
	job *api.Job
}

// check places the job in the renter's namespace and the hub's pool,
// strips the hub's meta keys, and checks it against the policy and the
// renter's stated maximum price.
func (s *Service) check(ctx context.Context, renter string, j *api.Job) (checked, error) {
	var c checked
	if j.ID == nil || *j.ID == "" {
		return c, coded.New(admission.CodeViolation, "the job has no ID")
	}
	if err := s.Sched.EnsureRenter(ctx, renter); err != nil {
		return c, fmt.Errorf("jobs: %w", err)
	}
	var err error
	if c.job, err = nomad.Copy(j); err != nil {
		return c, err
	}
	if err := s.Sched.Prepare(renter, j); err != nil {
		return c, err
	}
	c.job.Namespace, c.job.NodePool = j.Namespace, j.NodePool
	for _, k := range hubMeta {
		delete(j.Meta, k) // the hub's to write, never the renter's
		delete(c.job.Meta, k)
	}
	if c.base, err = Key(renter, j); err != nil {
		return c, fmt.Errorf("jobs: %w", err)
	}
	aj := nomad.AdmissionJob(j)
	usage, err := s.Store.RenterUsage(ctx, renter, *j.ID)
	if err != nil {
		return c, err
	}
	if err := s.Policy.Check(&aj, usage); err != nil {
		return c, err
	}
	if c.runtime, err = s.Policy.Runtime(&aj); err != nil {
		return c, err
	}
	var maxPrice ledger.Amount
	if v, ok := j.Meta[admission.MetaMaxPrice]; ok {
		if maxPrice, err = ledger.ParseAmount(v); err != nil {
			return c, coded.Errorf(admission.CodeViolation, "meta %s: %v", admission.MetaMaxPrice, err)
		}
	}
	// A job pinned to a region pays that region's prices.
	region := nomad.JobRegion(j)
	prices, err := s.Prices.PricesIn(ctx, region)
	if err != nil {
		return c, fmt.Errorf("jobs: %w", err)
	}
	tot := aj.Totals()
	acceptedCPU, err := accepted(j, prices.CPU)
	if err != nil {
		return c, err
	}
	if err := s.match(ctx, c.job, acceptedCPU); err != nil {
		return c, err
	}
	// The hold covers the most the job may pay: the accepted CPU price.
	held := prices
	held.CPU = acceptedCPU
	if c.quote, err = market.NewQuote(held, market.Resources{CPUMHz: int64(tot.CPUMHz), MemoryMB: int64(tot.MemoryMB), DiskMB: int64(tot.DiskMB)}, c.runtime, maxPrice); err != nil {
		return c, err
	}
	c.quote.Prices, c.quote.AcceptedCPU = prices, acceptedCPU
	c.quote.Region = region
	if c.quote.Max <= 0 {
		return c, coded.New(admission.CodeViolation, "the job asks for no resources")
	}
	return c, nil
}

func str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
