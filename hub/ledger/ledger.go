package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/translog"
	"golang.org/x/mod/sumdb/tlog"
)

// MaxBatch is the most accounts or transfers one call may carry.
const MaxBatch = 8190

// Store is where the ledger's state is durable (PostgreSQL in production).
type Store interface {
	// Load calls fn for every log leaf from index 0, in order, and returns
	// every stored account with its stored balances, both from one
	// consistent snapshot: a commit that lands meanwhile (a crashed
	// writer's last, still being executed) is in both or in neither.
	Load(ctx context.Context, fn func(index int64, leaf []byte) error) ([]Account, error)
	// Commit writes one batch atomically (one database transaction). When it
	// returns nil the batch is durable; when it returns an error the batch may
	// or may not have been written.
	Commit(ctx context.Context, b *Commit) error
	// ReadHashes returns log stored hashes by index (see translog.Storage).
	ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
}

// Commit is one group commit: new accounts and transfers (in log order), the
// final balances of every account they changed, and their log leaves.
type Commit struct {
	Accounts  []Account
	Transfers []Transfer
	Balances  []Account
	Log       translog.Batch
}

// Config configures a Ledger.
type Config struct {
	// MaxCommit is the most items one group commit holds (default 16*MaxBatch).
	// A group is only this large when that much is already queued; larger
	// groups amortize the fsync and the per-account balance updates.
	MaxCommit int
	// Now is the clock (default time.Now); tests move it to expire holds.
	Now func() time.Time
	// OnCommit is called after each durable commit with the new log tree. It
	// must not block (the transparency log publisher only records it).
	OnCommit func(tlog.Tree)
	Logger   *slog.Logger
}

// AccountResult is the outcome of creating one account.
type AccountResult struct {
	Account Account      `json:"account"`
	Existed bool         `json:"existed,omitempty"` // an identical account was already there
	Err     *coded.Error `json:"error,omitempty"`
}

// TransferResult is the outcome of one transfer. Existed means an identical
// transfer was committed before: Transfer is that original result.
type TransferResult struct {
	Transfer Transfer     `json:"transfer"`
	Existed  bool         `json:"existed,omitempty"`
	Err      *coded.Error `json:"error,omitempty"`
}

// ErrClosed is returned after Close.
var ErrClosed = coded.New(CodeUnavailable, "the ledger is shutting down; retry with the same ID")

// Ledger is the hub's single ledger writer. Its methods are safe for
// concurrent use; they block until the caller's batch is durable.
type Ledger struct {
	store Store
	cfg   Config
	log   *slog.Logger

	reqs    chan *request
	closing chan struct{}
	done    chan struct{}
	once    sync.Once

	failed chan struct{} // the committer failed a commit; the writer must reload
	idle   chan struct{} // the committer finished a group

	sent      uint64        // groups handed to the committer (writer only)
	committed atomic.Uint64 // groups the committer finished

	// Owned by the committer goroutine: the epoch of the last failed
	// commit, whose later groups are failed too.
	failedEpoch  uint64
	commitFailed bool

	// Owned by the writer goroutine.
	st    *state
	app   *translog.Appender
	epoch uint64 // incremented at every reload after a failed commit
}

type request struct {
	caller    Caller
	accounts  []Account
	transfers []Transfer
	aRes      []AccountResult
	tRes      []TransferResult
	err       error
	done      chan struct{}
}

// Open rebuilds the ledger's state from store by replaying its log, checks
// that the stored balances equal the replayed ones, and starts the writer.
func Open(ctx context.Context, store Store, cfg Config) (*Ledger, error) {
	if cfg.MaxCommit <= 0 {
		cfg.MaxCommit = 16 * MaxBatch
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	l := &Ledger{
		store:   store,
		cfg:     cfg,
		log:     cfg.Logger,
		reqs:    make(chan *request, 1024),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		failed:  make(chan struct{}, 1),
		idle:    make(chan struct{}, 1),
	}
	if err := l.load(ctx); err != nil {
		return nil, err
	}
	go l.run()
	return l, nil
}

// load replaces the writer's state with the store's.
func (l *Ledger) load(ctx context.Context) error {
	start := time.Now()
	r := NewReplay()
	stored, err := l.store.Load(ctx, func(i int64, leaf []byte) error {
		if i != r.Size() {
			return fmt.Errorf("log leaf %d out of order (want %d)", i, r.Size())
		}
		e, err := DecodeEntry(leaf)
		if err != nil {
			return err
		}
		return r.Apply(e)
	})
	if err != nil {
		return fmt.Errorf("ledger: load: %w", err)
	}
	if len(stored) != len(r.s.accounts) {
		return fmt.Errorf("ledger: load: store has %d accounts, log has %d", len(stored), len(r.s.accounts))
	}
	for _, sa := range stored {
		a := r.s.accounts[sa.ID]
		if a == nil || a.DebitsPending != sa.DebitsPending || a.DebitsPosted != sa.DebitsPosted ||
			a.CreditsPending != sa.CreditsPending || a.CreditsPosted != sa.CreditsPosted {
			return fmt.Errorf("ledger: load: stored balances of account %s differ from the log's replay", sa.ID)
		}
	}
	app, err := translog.NewAppender(ctx, r.Size(), tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		return l.store.ReadHashes(ctx, idx)
	}))
	if err != nil {
		return fmt.Errorf("ledger: load: %w", err)
	}
	r.s.dirty = make(map[ID]*Account)
	r.s.commitUndo()
	l.st, l.app = r.s, app
	l.log.Info("ledger loaded", "entries", r.Size(), "accounts", len(r.s.accounts), "transfers", len(r.s.transfers), "took", time.Since(start).Round(time.Millisecond))
	if l.cfg.OnCommit != nil && r.Size() > 0 {
		if h, err := app.TreeHash(); err == nil {
			l.cfg.OnCommit(tlog.Tree{N: r.Size(), Hash: h})
		}
	}
	return nil
}

// CreateAccounts creates accounts in order. Each result says what happened;
// the error is non-nil only when the batch was not processed at all.
func (l *Ledger) CreateAccounts(ctx context.Context, c Caller, accounts []Account) ([]AccountResult, error) {
	if len(accounts) > MaxBatch {
		return nil, errf(CodeBatchTooLarge, "%d accounts in one batch; the maximum is %d", len(accounts), MaxBatch)
	}
	r := &request{caller: c, accounts: accounts, done: make(chan struct{})}
	if err := l.submit(ctx, r); err != nil {
		return nil, err
	}
	return r.aRes, nil
}

// CreateTransfers applies transfers in order; linked chains commit all or
// nothing. Each result says what happened; the error is non-nil only when
// the batch was not processed (then a retry with the same IDs is safe).
func (l *Ledger) CreateTransfers(ctx context.Context, c Caller, transfers []Transfer) ([]TransferResult, error) {
	if len(transfers) > MaxBatch {
		return nil, errf(CodeBatchTooLarge, "%d transfers in one batch; the maximum is %d", len(transfers), MaxBatch)
	}
	r := &request{caller: c, transfers: transfers, done: make(chan struct{})}
	if err := l.submit(ctx, r); err != nil {
		return nil, err
	}
	return r.tRes, nil
}

func (l *Ledger) submit(ctx context.Context, r *request) error {
	select {
	case <-l.closing:
		return ErrClosed
	default:
	}
	select {
	case l.reqs <- r:
	case <-l.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		// The request may still commit; a retry with the same IDs is safe.
		return ctx.Err()
	}
}

// Close stops accepting requests, finishes those already queued, and stops
// the writer. Safe to call more than once.
func (l *Ledger) Close() error {
	l.once.Do(func() { close(l.closing) })
	<-l.done
	return nil
}

// run is the writer: it validates queued requests in order against the
// in-memory state, in groups, and hands each group to the committer, which
// makes it durable in one store transaction and only then answers.
//
// A group is cut when the committer is idle: every request that arrives
// while a commit is in flight waits in the next group, so under load a
// request waits for at most the commit in flight and its own. Only when a
// whole group (MaxCommit items) is waiting does the writer validate it
// while the previous one commits (pipelining, for throughput), never more
// than one group ahead.
func (l *Ledger) run() {
	commits := make(chan *group, 1)
	committerDone := make(chan struct{})
	go l.committer(commits, committerDone)
	defer func() {
		close(commits)
		<-committerDone
		close(l.done)
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var pending []*request
	items, expired := 0, false
	for {
		l.armExpiry(timer)
		select {
		case r := <-l.reqs:
			pending = append(pending, r)
			items += r.size()
		gather:
			for items < l.cfg.MaxCommit {
				select {
				case r := <-l.reqs:
					pending = append(pending, r)
					items += r.size()
				default:
					break gather
				}
			}
		case <-l.idle:
		case <-timer.C:
			expired = true
		case <-l.failed:
			l.recover(commits)
		case <-l.closing:
			// Finish what was queued before Close.
			for len(pending) > 0 {
				var batch []*request
				batch, pending, items = cut(pending, items, l.cfg.MaxCommit)
				l.dispatch(batch, commits)
			}
			for {
				select {
				case r := <-l.reqs:
					l.dispatch([]*request{r}, commits)
				default:
					return
				}
			}
		}
		for {
			inflight := l.sent - l.committed.Load()
			if !(inflight == 0 && (len(pending) > 0 || expired)) && !(items >= l.cfg.MaxCommit && inflight < 2) {
				break
			}
			var batch []*request
			batch, pending, items = cut(pending, items, l.cfg.MaxCommit)
			l.dispatch(batch, commits)
			expired = false
		}
	}
}

// cut takes the first requests of pending, up to max items (at least one
// request), and returns them, the rest, and the rest's item count.
func cut(pending []*request, items, max int) (batch, rest []*request, restItems int) {
	n, taken := 0, 0
	for n < len(pending) && (n == 0 || taken+pending[n].size() <= max) {
		taken += pending[n].size()
		n++
	}
	batch = pending[:n:n]
	rest = pending[n:]
	if len(rest) == 0 {
		rest = nil
	}
	return batch, rest, items - taken
}

func (r *request) size() int { return len(r.accounts) + len(r.transfers) }

func (l *Ledger) armExpiry(t *time.Timer) {
	next := l.st.nextExpiry()
	d := time.Hour
	if next != 0 {
		d = time.Until(time.Unix(0, next))
		if d < 0 {
			d = 0
		}
	}
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	t.Reset(d)
}

// group is one validated group commit on its way to the store.
type group struct {
	epoch   uint64
	reqs    []*request
	commit  *Commit // nil: nothing to write (answer only)
	tree    tlog.Tree
	barrier chan struct{} // non-nil: no work; closed when the committer reaches it
}

// dispatch validates one group of requests (plus any due expiries) and
// hands it to the committer. If a commit failed meanwhile, it first waits
// for the committer to drain and reloads state from the store.
func (l *Ledger) dispatch(batch []*request, commits chan<- *group) {
	select {
	case <-l.failed:
		l.recover(commits)
	default:
	}
	g := l.validate(batch)
	l.sent++
	commits <- g
}

// validate applies a group of requests to the in-memory state and builds
// its Commit.
func (l *Ledger) validate(batch []*request) *group {
	now := func() int64 { return l.cfg.Now().UnixNano() }
	if exp := l.st.dueExpiries(now(), MaxBatch); len(exp) > 0 {
		sys := &request{caller: System, transfers: exp}
		batch = append([]*request{sys}, batch...)
	}
	nAccounts, nTransfers := 0, 0
	for _, r := range batch {
		nAccounts += len(r.accounts)
		nTransfers += len(r.transfers)
	}
	b := &builder{
		c:      &Commit{Accounts: make([]Account, 0, nAccounts), Transfers: make([]Transfer, 0, nTransfers)},
		leaves: make([][]byte, 0, nAccounts+nTransfers),
		arena:  make([]byte, 0, 96*nAccounts+128*nTransfers),
		first:  l.app.Size(),
	}
	for _, r := range batch {
		if r.accounts != nil {
			r.aRes = make([]AccountResult, len(r.accounts))
			for i, a := range r.accounts {
				got, existed, err := l.st.createAccount(r.caller, a, l.st.nextTimestamp(now()))
				r.aRes[i] = AccountResult{Account: got, Existed: existed, Err: err}
				if err == nil && !existed {
					got.LogIndex = b.next()
					l.st.accounts[got.ID].LogIndex = got.LogIndex
					r.aRes[i].Account = got
					b.c.Accounts = append(b.c.Accounts, got)
					start := len(b.arena)
					b.arena = AppendAccountEntry(b.arena, &got)
					b.leaves = append(b.leaves, b.arena[start:len(b.arena):len(b.arena)])
				}
			}
			l.st.commitUndo()
		}
		if r.transfers != nil {
			l.applyTransfers(r, now, b)
		}
	}
	g := &group{epoch: l.epoch, reqs: batch}
	if len(b.leaves) == 0 {
		return g
	}
	c := b.c
	lb, err := l.app.Append(b.leaves)
	if err == nil {
		var h tlog.Hash
		h, err = l.app.TreeHash()
		g.tree = tlog.Tree{N: l.app.Size(), Hash: h}
	}
	if err != nil {
		// Cannot happen for leaves the ledger encoded; fail the group and
		// rebuild state so nothing half-applied survives.
		l.log.Error("ledger: log append failed", "err", err)
		g.commit = &Commit{} // marks the group failed in the committer
		g.tree = tlog.Tree{N: -1}
		return g
	}
	c.Log = lb
	c.Balances = l.st.takeDirty()
	g.commit = c
	return g
}

// committer makes groups durable in order and answers them. After a failed
// commit it fails every group of the same epoch (they were validated on top
// of the failed one) and tells the writer to reload.
func (l *Ledger) committer(commits <-chan *group, done chan<- struct{}) {
	defer close(done)
	for g := range commits {
		l.commitGroup(g)
		l.committed.Add(1)
		select {
		case l.idle <- struct{}{}:
		default: // a wake-up is pending already; the writer reads the count
		}
	}
}

func (l *Ledger) commitGroup(g *group) {
	if g.barrier != nil {
		close(g.barrier)
		return
	}
	if l.commitFailed && g.epoch == l.failedEpoch {
		l.answer(g.reqs, coded.New(CodeUnavailable, "the ledger could not commit this batch; retry with the same IDs"))
		return
	}
	if g.commit == nil {
		l.answer(g.reqs, nil)
		return
	}
	err := errors.New("log append failed")
	if g.tree.N >= 0 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err = l.store.Commit(ctx, g.commit)
		cancel()
	}
	if err != nil {
		l.log.Error("ledger: commit failed; reloading state from the store", "err", err, "items", len(g.commit.Log.Entries))
		l.answer(g.reqs, coded.New(CodeUnavailable, "the ledger could not commit this batch; retry with the same IDs"))
		l.commitFailed, l.failedEpoch = true, g.epoch
		select {
		case l.failed <- struct{}{}:
		default:
		}
		return
	}
	if l.cfg.OnCommit != nil {
		l.cfg.OnCommit(g.tree)
	}
	l.answer(g.reqs, nil)
}

// recover waits until the committer has drained every group validated on
// top of a failed commit, then rebuilds state from the store.
func (l *Ledger) recover(commits chan<- *group) {
	b := make(chan struct{})
	l.sent++
	commits <- &group{barrier: b}
	<-b
	l.reload()
	l.epoch++
}

// builder accumulates one group commit: its rows and their log leaves,
// encoded into one arena to spare the allocator.
type builder struct {
	c      *Commit
	leaves [][]byte
	arena  []byte
	first  int64 // log index of the group's first leaf
}

// next is the log index the next leaf gets.
func (b *builder) next() int64 { return b.first + int64(len(b.leaves)) }

// applyTransfers validates one request's transfers, honouring linked chains.
func (l *Ledger) applyTransfers(r *request, now func() int64, b *builder) {
	ts := r.transfers
	r.tRes = make([]TransferResult, len(ts))
	for i := 0; i < len(ts); {
		// A chain is ts[i..j]: every member but the last has Linked.
		j := i
		for j < len(ts)-1 && ts[j].Flags&Linked != 0 {
			j++
		}
		if ts[j].Flags&Linked != 0 {
			for k := i; k <= j; k++ {
				r.tRes[k] = TransferResult{Transfer: ts[k], Err: errf(CodeLinkedChainOpen, "transfer %s: the batch ends inside a linked chain", ts[k].ID)}
			}
			break
		}
		mark := l.st.mark()
		failed := -1
		for k := i; k <= j; k++ {
			got, existed, err := l.st.createTransfer(r.caller, ts[k], l.st.nextTimestamp(now()), false)
			r.tRes[k] = TransferResult{Transfer: got, Existed: existed, Err: err}
			if err != nil {
				failed = k
				break
			}
		}
		if failed >= 0 {
			l.st.rollback(mark)
			for k := i; k <= j; k++ {
				if k != failed {
					r.tRes[k] = TransferResult{Transfer: ts[k], Err: errf(CodeLinkedEventFailed, "transfer %s: linked transfer %s failed", ts[k].ID, ts[failed].ID)}
				}
			}
		} else {
			for k := i; k <= j; k++ {
				if r.tRes[k].Existed {
					continue
				}
				t := &r.tRes[k].Transfer
				t.LogIndex = b.next()
				l.st.transfers[t.ID].LogIndex = t.LogIndex
				b.c.Transfers = append(b.c.Transfers, *t)
				start := len(b.arena)
				b.arena = AppendTransferEntry(b.arena, t)
				b.leaves = append(b.leaves, b.arena[start:len(b.arena):len(b.arena)])
			}
		}
		l.st.commitUndo()
		i = j + 1
	}
}

func (l *Ledger) answer(batch []*request, err error) {
	for _, r := range batch {
		if r.done == nil {
			continue // system request
		}
		r.err = err
		close(r.done)
	}
}

// reload rebuilds state from the store after a failed commit, retrying until
// it succeeds or the ledger closes; nothing is answered meanwhile.
func (l *Ledger) reload() {
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		err := l.load(ctx)
		cancel()
		if err == nil {
			return
		}
		l.log.Error("ledger: reload failed", "err", err, "attempt", attempt)
		select {
		case <-l.closing:
			return
		case <-time.After(time.Second):
		}
	}
}

// IsUnavailable reports whether err means "not processed; retry".
func IsUnavailable(err error) bool {
	return coded.CodeOf(err) == CodeUnavailable || errors.Is(err, context.DeadlineExceeded)
}
