package payout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
)

// Codes of missing payout objects (404 at the API).
const (
	CodeProfileNotFound  coded.Code = "payout_profile_not_found"
	CodeRunNotFound      coded.Code = "payout_run_not_found"
	CodeWithholdNotFound coded.Code = "withhold_not_found"
)

// Ledger is the part of the ledger payouts use (*ledger.Ledger).
type Ledger interface {
	CreateTransfers(ctx context.Context, c ledger.Caller, ts []ledger.Transfer) ([]ledger.TransferResult, error)
}

// Store keeps profiles, runs, payouts and withholds, and reads committed
// accounts (*postgres.Store). Safe for concurrent use. Lookups of missing
// objects return a *coded.Error with CodeProfileNotFound, CodeRunNotFound
// or CodeWithholdNotFound.
type Store interface {
	Withholds
	PayoutProfile(ctx context.Context, owner string) (Profile, error)
	// SetPayoutProfile stores p (replacing owner's) and returns it as stored.
	SetPayoutProfile(ctx context.Context, p Profile) (Profile, error)
	PayoutProfiles(ctx context.Context) ([]Profile, error)
	// AccountsOfKind returns the committed accounts of a kind, oldest first.
	AccountsOfKind(ctx context.Context, kind ledger.AccountKind) ([]ledger.Account, error)
	// CreatePayoutRun stores r and its payouts in one transaction and sets
	// r.Batch and the payouts' Batch. If a run of r.Period exists, nothing
	// is stored, *r is replaced by that run, and existed is true.
	CreatePayoutRun(ctx context.Context, r *Run) (existed bool, err error)
	// PayoutRun returns the run of a period with its payouts.
	PayoutRun(ctx context.Context, p Period) (*Run, error)
	// PayoutRuns returns up to limit runs, newest period first, without payouts.
	PayoutRuns(ctx context.Context, limit int) ([]Run, error)
	// SetPayoutStates records the State and Detail of payouts of run batch.
	SetPayoutStates(ctx context.Context, batch int64, ps []Payout) error
	// CompletePayoutRun records r's state, totals, files and completion time.
	CompletePayoutRun(ctx context.Context, r *Run) error
	// PayoutsOf returns up to limit payouts of owner, newest first.
	PayoutsOf(ctx context.Context, owner string, limit int) ([]Payout, error)
	AddWithhold(ctx context.Context, w Withhold) (Withhold, error)
	// ReleaseWithhold releases an active withhold.
	ReleaseWithhold(ctx context.Context, id int64, by string) (Withhold, error)
	// ListWithholds returns the active withholds, or all with all set, newest first.
	ListWithholds(ctx context.Context, all bool) ([]Withhold, error)
}

// Deps are what a Service works with.
type Deps struct {
	Hub    string // the hub's name: part of transfer IDs and remittance information
	Ledger Ledger
	Store  Store
	// Account is the hub's payout account (ledger.KindPayout).
	Account ledger.ID
	// Withholds defaults to Store.
	Withholds Withholds
	// Rail defaults to FileRail{Config.Dir}.
	Rail   Rail
	Now    func() time.Time
	Logger *slog.Logger
}

// Service plans and makes payouts. Safe for concurrent use; runs are
// serialized.
type Service struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	mu   sync.Mutex // one run at a time
}

// New returns a payout service. cfg must be valid (Config.Validate).
func New(cfg Config, deps Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Hub == "" || deps.Ledger == nil || deps.Store == nil || deps.Account.IsZero() {
		return nil, errors.New("payout: Hub, Ledger, Store and Account are required")
	}
	if deps.Withholds == nil {
		deps.Withholds = deps.Store
	}
	if deps.Rail == nil {
		deps.Rail = FileRail{Dir: cfg.Dir}
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	return &Service{cfg: cfg, deps: deps, log: deps.Logger}, nil
}

// Config is the service's configuration, validated.
func (s *Service) Config() Config { return s.cfg }

// Profile returns owner's payout profile.
func (s *Service) Profile(ctx context.Context, owner string) (Profile, error) {
	return s.deps.Store.PayoutProfile(ctx, owner)
}

// SetProfile validates and stores owner's payout profile.
func (s *Service) SetProfile(ctx context.Context, owner string, r ProfileRequest) (Profile, error) {
	p, err := NewProfile(owner, r)
	if err != nil {
		return p, err
	}
	p.UpdatedAt = s.deps.Now().UTC()
	return s.deps.Store.SetPayoutProfile(ctx, p)
}

// Payouts returns up to limit of owner's payouts, newest first.
func (s *Service) Payouts(ctx context.Context, owner string, limit int) ([]Payout, error) {
	return s.deps.Store.PayoutsOf(ctx, owner, limit)
}

// Runs returns up to limit runs, newest first, without their payouts.
func (s *Service) Runs(ctx context.Context, limit int) ([]Run, error) {
	return s.deps.Store.PayoutRuns(ctx, limit)
}

// RunOf returns a period's run with its payouts.
func (s *Service) RunOf(ctx context.Context, p Period) (*Run, error) {
	return s.deps.Store.PayoutRun(ctx, p)
}

// Batch returns the batch of a period's complete run: what its rail was
// given, and what the batch files hold.
func (s *Service) Batch(ctx context.Context, p Period) (*Batch, error) {
	r, err := s.deps.Store.PayoutRun(ctx, p)
	if err != nil {
		return nil, err
	}
	if r.State != Complete {
		return nil, coded.Errorf(CodeRunNotFound, "the payout run of %s is not complete; run it again to complete it", p)
	}
	return s.batchOf(r), nil
}

func (s *Service) batchOf(r *Run) *Batch {
	b := &Batch{Number: r.Batch, Period: r.Period, Hub: s.deps.Hub, Created: r.CreatedAt, Debtor: r.Debtor}
	for _, p := range r.Payouts {
		if p.State == Paid {
			b.Payouts = append(b.Payouts, p)
		}
	}
	return b
}

// AddWithhold withholds owner's payouts in period (every period if zero)
// until released.
func (s *Service) AddWithhold(ctx context.Context, owner string, period Period, reason, by string) (Withhold, error) {
	reason = strings.TrimSpace(reason)
	if owner == "" {
		return Withhold{}, coded.New("invalid", "a withhold needs the contributor's name (owner)")
	}
	if reason == "" || len(reason) > MaxReason {
		return Withhold{}, coded.Errorf("invalid", "a withhold needs a reason of 1 to %d bytes", MaxReason)
	}
	return s.deps.Store.AddWithhold(ctx, Withhold{Owner: owner, Period: period, Reason: reason, CreatedBy: by, CreatedAt: s.deps.Now().UTC()})
}

// ReleaseWithhold releases withhold id: the contributor is paid again from
// the next run on.
func (s *Service) ReleaseWithhold(ctx context.Context, id int64, by string) (Withhold, error) {
	return s.deps.Store.ReleaseWithhold(ctx, id, by)
}

// Withholds lists the active withholds (all, with all set).
func (s *Service) Withholds(ctx context.Context, all bool) ([]Withhold, error) {
	return s.deps.Store.ListWithholds(ctx, all)
}

// checkPeriod refuses periods that have not begun.
func (s *Service) checkPeriod(p Period) error {
	if p.IsZero() {
		return coded.New(CodeInvalidPeriod, "a payout run needs a period (YYYY-MM)")
	}
	if now := s.deps.Now(); p.Start().After(now) {
		return coded.Errorf(CodeInvalidPeriod, "period %s has not begun (it is %s)", p, PeriodOf(now))
	}
	return nil
}

// Plan records the run of period p with its payouts, without paying, and
// returns it; if p has a run already, it returns that one.
func (s *Service) Plan(ctx context.Context, p Period, by string) (*Run, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkPeriod(p); err != nil {
		return nil, err
	}
	return s.plan(ctx, p, by)
}

// Run makes the payouts of period p: it plans the run (or takes the
// recorded one), makes its ledger transfers, hands the batch to the rail
// and marks the run complete. A complete run is returned as it is:
// nothing is paid twice. by is who started it ("schedule" or an operator).
func (s *Service) Run(ctx context.Context, p Period, by string) (*Run, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkPeriod(p); err != nil {
		return nil, err
	}
	r, err := s.plan(ctx, p, by)
	if err != nil {
		return nil, err
	}
	if r.State == Complete {
		return r, nil
	}
	if err := s.pay(ctx, r); err != nil {
		return nil, err
	}
	refs, err := s.deps.Rail.Pay(ctx, s.batchOf(r))
	if err != nil {
		return nil, fmt.Errorf("payout: run %s: rail: %w", p, err)
	}
	r.Files, r.Paid, r.TotalUSP, r.TotalCents = refs, 0, 0, 0
	for _, po := range r.Payouts {
		if po.State == Paid {
			r.Paid++
			r.TotalUSP += po.Amount
			r.TotalCents += po.Cents
		}
	}
	done := s.deps.Now().UTC()
	r.State, r.CompletedAt = Complete, &done
	if err := s.deps.Store.CompletePayoutRun(ctx, r); err != nil {
		return nil, err
	}
	s.log.Info("payout run complete", "period", p, "batch", r.Batch, "paid", r.Paid, "total_usp", int64(r.TotalUSP), "total_eur", EUR(r.TotalCents), "files", r.Files)
	return r, nil
}

// plan returns the recorded run of p, or plans and records it.
func (s *Service) plan(ctx context.Context, p Period, by string) (*Run, error) {
	r, err := s.deps.Store.PayoutRun(ctx, p)
	if err == nil {
		return r, nil
	}
	if coded.CodeOf(err) != CodeRunNotFound {
		return nil, err
	}
	profiles, err := s.deps.Store.PayoutProfiles(ctx)
	if err != nil {
		return nil, err
	}
	accts, err := s.deps.Store.AccountsOfKind(ctx, ledger.KindContributor)
	if err != nil {
		return nil, err
	}
	byOwner := map[string][]ledger.Account{}
	for _, a := range accts {
		byOwner[a.Owner] = append(byOwner[a.Owner], a)
	}
	sort.Slice(profiles, func(i, j int) bool { return profiles[i].Owner < profiles[j].Owner })
	r = &Run{Period: p, State: Planned, RateCents: s.cfg.RateCents, Debtor: s.cfg.Debtor, StartedBy: by, CreatedAt: s.deps.Now().UTC().Truncate(time.Second)}
	for _, prof := range profiles {
		var available ledger.Amount
		for _, a := range byOwner[prof.Owner] {
			if a.Flags&ledger.AccountClosed == 0 && a.Available() > 0 {
				available = min(available+a.Available(), ledger.MaxAmount)
			}
		}
		if available < prof.Threshold {
			continue
		}
		po := Payout{Period: p, Owner: prof.Owner, LegalName: prof.LegalName, IBAN: prof.IBAN, BIC: prof.BIC, Available: available, State: Planned}
		reason, withheld, err := s.deps.Withholds.Withheld(ctx, prof.Owner, p)
		if err != nil {
			return nil, fmt.Errorf("payout: withholds of %s: %w", prof.Owner, err)
		}
		if withheld {
			po.State, po.Detail, po.Carried = Withheld, reason, available
			r.Payouts = append(r.Payouts, po)
			continue
		}
		po.Amount, po.Cents = Convert(available, s.cfg.RateCents)
		if po.Cents == 0 {
			continue // less than a cent: only with a threshold below a cent's worth
		}
		po.Carried = available - po.Amount
		rest := po.Amount
		for _, a := range byOwner[prof.Owner] {
			if rest == 0 {
				break
			}
			if a.Flags&ledger.AccountClosed != 0 || a.Available() <= 0 {
				continue
			}
			take := min(a.Available(), rest)
			po.Transfers = append(po.Transfers, Transfer{Account: a.ID, ID: TransferID(s.deps.Hub, prof.Owner, p, a.ID), Amount: take})
			rest -= take
		}
		po.EndToEndID = EndToEndID(po.Transfers[0].ID)
		if po.Carried > 0 {
			po.Detail = fmt.Sprintf("the euro amount is rounded down to whole cents: %d µSP, worth less than a cent, stay on the account for the next payout", int64(po.Carried))
		}
		r.Payouts = append(r.Payouts, po)
	}
	existed, err := s.deps.Store.CreatePayoutRun(ctx, r)
	if err != nil {
		return nil, err
	}
	if !existed {
		s.log.Info("payout run planned", "period", p, "batch", r.Batch, "payouts", len(r.Payouts), "by", by)
	}
	return r, nil
}

// pay makes the ledger transfers of r's planned payouts (each payout's
// transfers linked, all or nothing) and records which were paid and which
// failed. An error leaves the run planned: running it again resubmits the
// same transfers, which the ledger recognises.
func (s *Service) pay(ctx context.Context, r *Run) error {
	type chain struct {
		payout int // index in r.Payouts
		first  int // index of its first transfer in the batch
	}
	var changed []Payout
	flush := func(ts []ledger.Transfer, chains []chain) error {
		if len(ts) == 0 {
			return nil
		}
		res, err := s.deps.Ledger.CreateTransfers(ctx, ledger.System, ts)
		if err != nil {
			return fmt.Errorf("payout: run %s: transfers: %w", r.Period, err)
		}
		for _, c := range chains {
			po := &r.Payouts[c.payout]
			po.State = Paid // keeping its rounding note
			for k := range po.Transfers {
				if e := res[c.first+k].Err; e != nil && e.Code != ledger.CodeLinkedEventFailed {
					po.State, po.Detail = Failed, fmt.Sprintf("the ledger refused the payout (%s): %s", e.Code, e.Message)
				}
			}
			changed = append(changed, *po)
		}
		return nil
	}
	var ts []ledger.Transfer
	var chains []chain
	ud := "payout " + r.Period.String()
	for i, po := range r.Payouts {
		if po.State != Planned {
			continue
		}
		if len(ts)+len(po.Transfers) > ledger.MaxBatch {
			if err := flush(ts, chains); err != nil {
				return err
			}
			ts, chains = nil, nil
		}
		chains = append(chains, chain{payout: i, first: len(ts)})
		for k, t := range po.Transfers {
			lt := ledger.Transfer{ID: t.ID, DebitAccountID: t.Account, CreditAccountID: s.deps.Account, Amount: t.Amount, Code: TransferCode, UserData: ud}
			if k < len(po.Transfers)-1 {
				lt.Flags = ledger.Linked
			}
			ts = append(ts, lt)
		}
	}
	if err := flush(ts, chains); err != nil {
		return err
	}
	if len(changed) == 0 {
		return nil
	}
	for _, po := range changed {
		if po.State == Failed {
			s.log.Warn("payout failed", "period", r.Period, "owner", po.Owner, "detail", po.Detail)
		}
	}
	return s.deps.Store.SetPayoutStates(ctx, r.Batch, changed)
}

// RunSchedule runs each period's payout once the period has been over for
// Config.Delay, checking every Config.CheckInterval, until ctx is done. It
// returns nil when ctx is done; a failed run is logged and retried at the
// next check (it completes with the same transfers).
func (s *Service) RunSchedule(ctx context.Context) error {
	t := time.NewTicker(s.cfg.CheckInterval)
	defer t.Stop()
	for {
		s.scheduled(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// scheduled runs the previous period's payout if it is due and not complete.
func (s *Service) scheduled(ctx context.Context) {
	now := s.deps.Now()
	p := PeriodOf(now).Prev()
	if now.Before(p.End().Add(s.cfg.Delay)) {
		return
	}
	if r, err := s.deps.Store.PayoutRun(ctx, p); err == nil && r.State == Complete {
		return
	}
	if _, err := s.Run(ctx, p, "schedule"); err != nil && ctx.Err() == nil {
		s.log.Error("payout: scheduled run failed; retrying at the next check", "period", p, "err", err)
	}
}
