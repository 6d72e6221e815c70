package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/agent/agentapi"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/invoice"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/meter"
	"github.com/spiceroute/spiceroute/hub/settle"
	"github.com/spiceroute/spiceroute/scheduler/nomad"
)

// Billing configures how the hub settles and invoices jobs.
type Billing struct {
	Hub          string        // the hub's name, on invoices
	CommissionBP int           // the hub's commission, in basis points of what renters pay
	Interval     time.Duration // between settlement ticks (default DefaultInterval)
	// Revenue is paid for allocations on nodes that name no valid
	// contributor account (node meta spiceroute_contributor_account).
	Revenue ledger.ID
	// Lag is how far behind the clock running allocations are charged
	// (default DefaultLag): Nomad's servers learn that a task ended a moment
	// after it did, and a charge past its end would have to be refunded.
	Lag time.Duration
	// AdmitGrace is how long an admission may stay unregistered before its
	// hold is released (default DefaultAdmitGrace).
	AdmitGrace time.Duration
	// Reader reads committed accounts and transfers (*postgres.Store).
	Reader Reader
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Reader reads committed ledger state.
type Reader interface {
	Account(ctx context.Context, id ledger.ID) (ledger.Account, error)
	Transfer(ctx context.Context, id ledger.ID) (ledger.Transfer, error)
}

// Billing defaults.
const (
	DefaultInterval = time.Minute
	// DefaultAdmitGrace is how long an admission may stay unregistered
	// before the settlement loop decides its submission died (the hub
	// crashed between the hold and the registration, and the renter did not
	// retry) and releases its hold.
	DefaultAdmitGrace = 2 * time.Minute
	DefaultLag        = 5 * time.Second
)

// biller is the service's state, created on first use.
type biller struct {
	mu      sync.Mutex // serializes Settle
	cacheMu sync.Mutex
	nodes   map[string]machine // by node ID
	kick    chan struct{}

	running marker
	payers  sync.Map // renter → []ledger.ID, its renter accounts
}

var billers sync.Map // *Service → *biller

func (s *Service) b() *biller {
	// Load first: every submission calls this, and LoadOrStore alone
	// would build a biller each time only to drop it.
	if v, ok := billers.Load(s); ok {
		return v.(*biller)
	}
	v, _ := billers.LoadOrStore(s, &biller{nodes: map[string]machine{}, kick: make(chan struct{}, 1)})
	return v.(*biller)
}

func (s *Service) log() *slog.Logger {
	if s.Billing.Logger != nil {
		return s.Billing.Logger
	}
	return slog.Default()
}

func (s *Service) now() time.Time {
	if s.Billing.Now != nil {
		return s.Billing.Now()
	}
	return time.Now()
}

// RunSettlement follows Nomad's allocation events, recording what each
// allocation of an admitted job ran, and settles every open admission each
// Billing.Interval, and at once when an allocation ends. It returns when
// ctx is done.
//
// The event stream makes settlement prompt; each tick also reads the
// allocations of every open job from Nomad, so an event missed while the
// hub was down is made up for at the next tick.
func (s *Service) RunSettlement(ctx context.Context) error {
	from, err := s.Store.Cursor(ctx)
	if err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	if from > 0 {
		// A cursor beyond every allocation Nomad has is another cluster's
		// (the hub was pointed at a new one): follow this one from its start.
		if top, err := s.Sched.AllocIndex(ctx); err != nil {
			return fmt.Errorf("jobs: %w", err)
		} else if from > top {
			s.log().Warn("jobs: the event cursor is beyond this Nomad cluster's allocations; following it from the start", "cursor", from, "nomad_index", top)
			if err := s.Store.ResetCursor(ctx, 0); err != nil {
				return fmt.Errorf("jobs: %w", err)
			}
			from = 0
		}
	}
	interval := s.Billing.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	watchDone := make(chan error, 1)
	go func() {
		watchDone <- s.Sched.WatchAllocations(ctx, from, s.log(), func(ev nomad.AllocationEvent) error {
			s.observe(ctx, ev)
			return nil
		})
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.Settle(ctx); err != nil && ctx.Err() == nil {
			s.log().Error("jobs: settlement", "err", err)
		}
		select {
		case <-ctx.Done():
			<-watchDone
			return nil
		case err := <-watchDone:
			return fmt.Errorf("jobs: allocation watch: %w", err)
		case <-t.C:
		case <-s.b().kick:
		}
	}
}

// observe records one allocation update. Errors are logged, not returned:
// the next tick reads the allocation from Nomad anyway.
func (s *Service) observe(ctx context.Context, ev nomad.AllocationEvent) {
	a := ev.Allocation
	key, err := s.Store.AllocationAdmission(ctx, a.ID)
	if err == nil && key == "" {
		// Not seen before. Events carry no job: read the allocation, whose
		// job's meta names the admission that registered it.
		var full *api.Allocation
		if full, err = s.Sched.Allocation(ctx, ev.Renter, a.ID); err == nil && full.Job != nil {
			key, a = full.Job.Meta[MetaAdmitted], full
		}
	}
	if err == nil && key != "" {
		var rec *Record
		if rec, err = s.Store.Admission(ctx, key); err == nil {
			err = s.saveAllocation(ctx, rec, a)
		}
	}
	if err == nil {
		err = s.Store.SaveCursor(ctx, ev.Index)
	}
	if err != nil {
		s.log().Warn("jobs: allocation event", "alloc", a.ID, "index", ev.Index, "err", err)
		return
	}
	if key != "" && a.ClientTerminalStatus() {
		select {
		case s.b().kick <- struct{}{}:
		default:
		}
	}
}

func (s *Service) saveAllocation(ctx context.Context, rec *Record, a *api.Allocation) error {
	m, err := s.machine(ctx, a.NodeID)
	if err != nil {
		return err
	}
	return s.Store.SaveAllocation(ctx, AllocRecord{ID: a.ID, Admission: rec.Key, Node: a.NodeID, Contributor: m.account,
		Usage: nomad.MeterAllocation(a), ModifyIndex: a.ModifyIndex, CPUPrice: rec.Quote.CPUPrice(m.floor)})
}

// machine is what billing needs of a node: the account paid for work on
// it and its CPU price floor.
type machine struct {
	account ledger.ID
	floor   ledger.Amount
}

// machine reads (once) what billing needs of a node from its meta.
func (s *Service) machine(ctx context.Context, node string) (machine, error) {
	b := s.b()
	b.cacheMu.Lock()
	m, ok := b.nodes[node]
	b.cacheMu.Unlock()
	if ok {
		return m, nil
	}
	meta, err := s.Sched.NodeMeta(ctx, node)
	if err != nil {
		return machine{}, err
	}
	if f, err := strconv.ParseInt(meta[agentapi.MetaFloorCPU], 10, 64); err == nil && f > 0 {
		m.floor = ledger.Amount(f)
	}
	id := s.Billing.Revenue
	if v := meta[nomad.MetaContributorAccount]; v != "" {
		if cid, err := ledger.ParseID(v); err != nil {
			s.log().Warn("jobs: node names an invalid contributor account; its work is paid to the hub", "node", node, "account", v, "err", err)
		} else if acct, err := s.Billing.Reader.Account(ctx, cid); err != nil || acct.Kind != ledger.KindContributor {
			s.log().Warn("jobs: node names no contributor account; its work is paid to the hub", "node", node, "account", v, "err", err)
		} else {
			id = cid
		}
	} else {
		s.log().Warn("jobs: node has no contributor account; its work is paid to the hub", "node", node)
	}
	m.account = id
	b.cacheMu.Lock()
	b.nodes[node] = m
	b.cacheMu.Unlock()
	return m, nil
}

// Settle settles every open admission once and invoices every settled one
// that has no invoice yet. Safe to call at any time; calls are serialized.
func (s *Service) Settle(ctx context.Context) error {
	b := s.b()
	b.mu.Lock()
	defer b.mu.Unlock()
	recs, err := s.Store.OpenAdmissions(ctx)
	if err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	planned, err := s.Store.PlannedSettlements(ctx)
	if err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	var errs []error
	// One read of every renter job per tick, however many jobs are open.
	var stubs map[string]*api.JobListStub
	if len(recs) > 0 {
		if stubs, err = s.Sched.RenterJobs(ctx); err != nil {
			return fmt.Errorf("jobs: %w", err)
		}
	}
	newest := map[string]string{} // renter job → its newest open admission
	for _, rec := range recs {    // oldest first
		newest[nomad.RenterJobKey(rec.Renter, rec.JobID)] = rec.Key
	}
	for _, rec := range recs {
		k := nomad.RenterJobKey(rec.Renter, rec.JobID)
		v := view{planned: planned[rec.Key], job: stubs[k], superseded: newest[k] != rec.Key}
		if err := s.settle(ctx, rec, v); err != nil {
			errs = append(errs, fmt.Errorf("job %s/%s (admission %s): %w", rec.Renter, rec.JobID, rec.Key, err))
		}
	}
	done, err := s.Store.Uninvoiced(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	for _, rec := range done {
		if _, err := s.Invoice(ctx, rec); err != nil {
			errs = append(errs, fmt.Errorf("invoice for %s/%s: %w", rec.Renter, rec.JobID, err))
		}
	}
	return errors.Join(errs...)
}

// view is what a tick knows of an admission besides its record.
type view struct {
	planned    []Settlement     // settlements planned but not applied (a crash in between)
	job        *api.JobListStub // Nomad's job, nil if Nomad has none by its ID
	superseded bool             // a newer admission of the same job is open
}

// settle brings one admission up to date: finishes settlements planned
// before a crash, releases a hold whose job never registered, refreshes
// the job's allocations from Nomad, refunds lost allocations, and charges
// what ran since the last tick, finally if the job has ended.
func (s *Service) settle(ctx context.Context, rec *Record, v view) error {
	var err error
	for i := range v.planned {
		if err := s.execute(ctx, rec, &v.planned[i]); err != nil {
			return err
		}
	}
	if len(v.planned) > 0 {
		if rec, err = s.Store.Admission(ctx, rec.Key); err != nil || !rec.Open() {
			return err
		}
	}
	now := s.now() // before reading Nomad: a task that ends meanwhile ends after now
	if rec.State == Admitted {
		versions, err := s.Sched.JobVersions(ctx, rec.Renter, rec.JobID)
		if err != nil {
			return err
		}
		for _, v := range versions {
			if v.Meta[MetaAdmitted] == rec.Key {
				return s.Store.SetAdmissionState(ctx, rec.Key, Running, "")
			}
		}
		if now.Sub(rec.CreatedAt) < s.admitGrace() {
			return nil // its submission may still be registering it
		}
		return s.release(ctx, rec, "the job never reached Nomad")
	}
	allocs, err := s.refresh(ctx, rec, v.job)
	if err != nil {
		return err
	}
	for _, a := range allocs {
		if err := s.refundIfDue(ctx, rec, a); err != nil {
			s.log().Warn("jobs: refund failed; retrying at the next tick", "alloc", a.ID, "err", err)
		}
	}

	j := v.job
	over := j == nil || j.Stop || j.Status == "dead" || v.superseded
	ended := over
	start := rec.CreatedAt
	var charges []settle.Charge
	for _, a := range allocs {
		ended = ended && a.Terminal()
		for _, t := range a.Usage.Tasks {
			if !t.StartedAt.IsZero() && (start == rec.CreatedAt || t.StartedAt.Before(start)) {
				start = t.StartedAt
			}
		}
		if a.Usage.Status == meter.Lost {
			continue
		}
		at := now
		if !a.Terminal() {
			at = now.Add(-s.lag()) // what Nomad's servers may not know yet is charged next time
		}
		u, err := meter.Measure(a.Usage, a.Prices(rec.Quote), at)
		if err != nil {
			return err
		}
		if due := meter.Due(u, a.Gross); due > 0 {
			charges = append(charges, settle.Charge{Allocation: a.ID, Contributor: a.Contributor, Amount: due, Paid: a.Gross, PaidCommission: a.Commission})
		}
	}
	if !over && now.After(start.Add(rec.Quote.MaxRuntime)) {
		s.log().Info("jobs: stopping a job at its maximum runtime", "renter", rec.Renter, "job", rec.JobID, "runtime", rec.Quote.MaxRuntime)
		if err := s.Sched.Stop(ctx, rec.Renter, rec.JobID, false); err != nil {
			return err
		}
	}
	if rec.Hold.Amount <= 0 {
		// The hold is spent: usage beyond it is not charged.
		if ended {
			st := &Settlement{Admission: rec.Key, Kind: KindFinal}
			return s.finish(ctx, rec, st)
		}
		return nil
	}
	p, err := settle.Tick(rec.Key, rec.Hold, charges, s.Billing.CommissionBP, ended, s.Accounts.Accounts)
	if err != nil || len(p.Transfers) == 0 {
		return err
	}
	st := &Settlement{Admission: rec.Key, Kind: KindTick, Plan: p}
	if ended {
		st.Kind = KindFinal
		return s.finish(ctx, rec, st)
	}
	return s.execute(ctx, rec, st)
}

// finish applies the final settlement and invoices the job.
func (s *Service) finish(ctx context.Context, rec *Record, st *Settlement) error {
	if err := s.execute(ctx, rec, st); err != nil {
		return err
	}
	done, err := s.Store.Admission(ctx, rec.Key)
	if err != nil {
		return err
	}
	_, err = s.Invoice(ctx, done)
	return err
}

// refresh records the admission's allocations that Nomad knows and the
// hub does not yet (the event stream missed them while the hub was down),
// re-reads those not yet terminal, and returns them all. It asks Nomad only
// when there is something to learn: a job whose allocations are all known
// and ended costs no request.
func (s *Service) refresh(ctx context.Context, rec *Record, job *api.JobListStub) ([]AllocRecord, error) {
	known, err := s.Store.Allocations(ctx, rec.Key)
	if err != nil {
		return nil, err
	}
	live := false
	for _, a := range known {
		live = live || !a.Terminal()
	}
	if !live && (job == nil || nomad.AllocCount(job) <= len(known)) {
		return known, nil
	}
	var ids []string
	if job != nil {
		stubs, err := s.Sched.Allocations(ctx, rec.Renter, rec.JobID)
		if err != nil && !nomad.IsNotFound(err) {
			return nil, err
		}
		for _, st := range stubs {
			ids = append(ids, st.ID)
		}
	} else {
		// The job was purged: its allocations can still be read by ID
		// until Nomad collects them; one it forgot keeps its last snapshot.
		for _, a := range known {
			ids = append(ids, a.ID)
		}
	}
	for _, id := range ids {
		i := slices.IndexFunc(known, func(a AllocRecord) bool { return a.ID == id })
		if i >= 0 && known[i].Terminal() {
			continue
		}
		a, err := s.Sched.Allocation(ctx, rec.Renter, id)
		if nomad.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if i < 0 && (a.Job == nil || a.Job.Meta[MetaAdmitted] != rec.Key) {
			continue // another admission's
		}
		if err := s.saveAllocation(ctx, rec, a); err != nil {
			return nil, err
		}
	}
	return s.Store.Allocations(ctx, rec.Key)
}

// refundIfDue returns to the renter what an ended allocation paid beyond
// what it ran: everything when it was lost (the contributor's fault), or
// the excess when a running debit note charged past the task's end (Nomad's
// servers learn of a task's end a moment after it happens). At most once
// per allocation.
func (s *Service) refundIfDue(ctx context.Context, rec *Record, a AllocRecord) error {
	if a.Refunded || a.Gross <= 0 || !a.Terminal() {
		return nil
	}
	var gross ledger.Amount
	if a.Usage.Status == meter.Lost {
		gross = a.Gross
	} else {
		u, err := meter.Measure(a.Usage, a.Prices(rec.Quote), s.now())
		if err != nil {
			return err
		}
		gross = a.Gross - u.Total
	}
	if gross <= 0 {
		return nil
	}
	// The hub keeps the commission on what the allocation is left paying.
	commission := max(0, a.Commission-settle.Commission(a.Gross-gross, s.Billing.CommissionBP))
	sh := settle.Share{Allocation: a.ID, Contributor: a.Contributor, Gross: gross, Commission: commission}
	st := &Settlement{Admission: rec.Key, Kind: KindRefund, Plan: settle.Plan{
		Transfers: settle.Refund(rec.Key, sh, rec.Account, s.Accounts.Accounts), Shares: []settle.Share{sh}, Charged: gross, Commission: commission}}
	return s.execute(ctx, rec, st)
}

// admitGrace is how long an admission may stay unregistered.
func (s *Service) admitGrace() time.Duration {
	if s.Billing.AdmitGrace > 0 {
		return s.Billing.AdmitGrace
	}
	return DefaultAdmitGrace
}

// lag is how far behind now running allocations are charged.
func (s *Service) lag() time.Duration {
	if s.Billing.Lag > 0 {
		return s.Billing.Lag
	}
	return DefaultLag
}

// release voids the hold of an admission whose job never registered.
func (s *Service) release(ctx context.Context, rec *Record, reason string) error {
	p, err := settle.Tick(rec.Key, rec.Hold, nil, 0, true, s.Accounts.Accounts)
	if err != nil {
		return err
	}
	if err := s.execute(ctx, rec, &Settlement{Admission: rec.Key, Kind: KindRelease, Plan: p}); err != nil {
		return err
	}
	return s.Store.SetAdmissionState(ctx, rec.Key, Released, reason)
}

// holdGone are the ledger's answers when the hold a settlement posts from
// is no longer there: the admission cannot be settled any more.
var holdGone = []coded.Code{ledger.CodeHoldExpired, ledger.CodePendingNotFound, ledger.CodeHoldAlreadyPosted, ledger.CodeHoldAlreadyVoided}

// execute records st as planned (unless it is already), submits its
// transfers and books it. A settlement whose submission did not get an
// answer stays planned and is resubmitted, identically, next time.
func (s *Service) execute(ctx context.Context, rec *Record, st *Settlement) error {
	if st.ID == 0 {
		if err := s.Store.PlanSettlement(ctx, st); err != nil {
			return err
		}
	}
	if ts := st.Plan.Transfers; len(ts) > 0 {
		res, err := s.Ledger.CreateTransfers(ctx, ledger.System, ts)
		if err != nil {
			return fmt.Errorf("settlement %d: %w", st.ID, err)
		}
		if e := firstError(res); e != nil {
			if err := s.Store.FailSettlement(ctx, st.ID, e.Error()); err != nil {
				return err
			}
			if st.Kind == KindRelease && slices.Contains(holdGone, e.Code) {
				return nil // nothing left to release
			}
			if slices.Contains(holdGone, e.Code) {
				s.log().Error("jobs: the job's hold is gone; stopping it", "renter", rec.Renter, "job", rec.JobID, "err", e)
				if err := s.Store.SetAdmissionState(ctx, rec.Key, Failed, "settlement failed: "+e.Error()); err != nil {
					return err
				}
				if err := s.Sched.Stop(ctx, rec.Renter, rec.JobID, false); err != nil && !nomad.IsNotFound(err) {
					return err
				}
			}
			return fmt.Errorf("settlement %d (%s): %w", st.ID, st.Kind, e)
		}
	}
	return s.Store.ApplySettlement(ctx, st)
}

// firstError is the cause of a failed chain: the first error that is not
// "linked_event_failed".
func firstError(res []ledger.TransferResult) *coded.Error {
	var first *coded.Error
	for _, r := range res {
		if r.Err == nil {
			continue
		}
		if first == nil {
			first = r.Err
		}
		if r.Err.Code != ledger.CodeLinkedEventFailed {
			return r.Err
		}
	}
	return first
}

// Invoice issues the renter's invoice for a settled admission (once: a
// second call returns the same number). Each line is one resource of one
// allocation, pointing to the transfers that charged the renter and paid
// the contributor, and their log indexes.
func (s *Service) Invoice(ctx context.Context, rec *Record) (int64, error) {
	if rec.State != Settled {
		return 0, fmt.Errorf("jobs: admission %s is %s, not settled", rec.Key, rec.State)
	}
	allocs, err := s.Store.Allocations(ctx, rec.Key)
	if err != nil {
		return 0, err
	}
	sts, err := s.Store.Settlements(ctx, rec.Key)
	if err != nil {
		return 0, err
	}
	var debits []ledger.ID
	pays := map[string][]ledger.ID{}
	refunds := map[string][]ledger.ID{}
	for _, st := range sts {
		if st.State != "applied" {
			continue
		}
		for _, t := range st.Plan.Transfers {
			if t.Flags&ledger.PostPending != 0 {
				debits = append(debits, t.ID)
			}
		}
		for _, sh := range st.Plan.Shares {
			switch {
			case st.Kind == KindRefund:
				for _, t := range st.Plan.Transfers {
					refunds[sh.Allocation] = append(refunds[sh.Allocation], t.ID)
				}
			case sh.Pay != (ledger.ID{}):
				pays[sh.Allocation] = append(pays[sh.Allocation], sh.Pay)
			}
		}
	}
	end := rec.EndedAt
	if end.IsZero() {
		end = s.now()
	}
	inv := &invoice.Invoice{Kind: invoice.RenterInvoice, Hub: s.Billing.Hub, Party: rec.Renter, Job: rec.JobID, IssuedAt: s.now().UTC(), Commission: rec.Commission}
	sort.Slice(allocs, func(i, j int) bool { return allocs[i].ID < allocs[j].ID })
	var measured ledger.Amount
	for _, a := range allocs {
		if a.Usage.Status == meter.Lost {
			note := fmt.Sprintf("Allocation %s was lost on node %s (the machine went away): not charged; Nomad rescheduled the work.", a.ID, a.Node)
			if a.Refunded {
				note += fmt.Sprintf(" Charges settled for it before it was lost were refunded by transfers %v.", refunds[a.ID])
			}
			inv.Notes = append(inv.Notes, note)
			continue
		}
		u, err := meter.Measure(a.Usage, a.Prices(rec.Quote), end)
		if err != nil {
			return 0, err
		}
		ids := append(append(append([]ledger.ID(nil), debits...), pays[a.ID]...), refunds[a.ID]...)
		idx, err := s.logIndexes(ctx, ids)
		if err != nil {
			return 0, err
		}
		for _, l := range u.Lines {
			inv.Lines = append(inv.Lines, invoice.Line{Allocation: a.ID, Node: a.Node, Cost: l, Transfers: ids, LogIndexes: idx})
		}
		measured += u.Total
	}
	if measured < rec.Charged {
		return 0, fmt.Errorf("jobs: admission %s charged %s but measured %s", rec.Key, rec.Charged, measured)
	}
	inv.Credit = measured - rec.Charged
	if inv.Credit > 0 {
		inv.Notes = append(inv.Notes, fmt.Sprintf("The job ran beyond what you agreed to pay (%s for %s); the excess was not charged.", rec.Quote.Max, rec.Quote.MaxRuntime))
	}
	if err := s.Store.IssueJobInvoice(ctx, rec.Key, inv); err != nil {
		return 0, err
	}
	return inv.Number, nil
}

func (s *Service) logIndexes(ctx context.Context, ids []ledger.ID) ([]int64, error) {
	out := make([]int64, len(ids))
	for i, id := range ids {
		t, err := s.Billing.Reader.Transfer(ctx, id)
		if err != nil {
			return nil, err
		}
		out[i] = t.LogIndex
	}
	return out, nil
}
