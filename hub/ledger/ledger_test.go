package ledger_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/postgres"
	"github.com/spiceroute/spiceroute/hub/postgres/pgtest"
	"golang.org/x/mod/sumdb/tlog"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const sp = ledger.MicroPerSpice

type env struct {
	t        *testing.T
	store    *postgres.Store
	l        *ledger.Ledger
	cfg      ledger.Config
	issuance ledger.ID
}

func newEnv(t *testing.T, cfg ledger.Config) *env {
	t.Helper()
	e := &env{t: t, store: postgres.New(pgtest.MustOpenDB(t)), cfg: cfg, issuance: ledger.NewID()}
	e.open()
	e.accounts(ledger.System, ledger.Account{ID: e.issuance, Owner: "hub", Kind: ledger.KindIssuance, Flags: ledger.AccountAllowNegative})
	return e
}

func (e *env) open() {
	e.t.Helper()
	l, err := ledger.Open(context.Background(), e.store, e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.l = l
	e.t.Cleanup(func() { l.Close() })
}

// restart closes the ledger and opens a new one on the same database.
func (e *env) restart() {
	e.t.Helper()
	e.l.Close()
	e.open()
}

func (e *env) accounts(c ledger.Caller, accts ...ledger.Account) {
	e.t.Helper()
	res, err := e.l.CreateAccounts(context.Background(), c, accts)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			e.t.Fatal(r.Err)
		}
	}
}

func (e *env) renter(owner string, issued ledger.Amount) ledger.ID {
	e.t.Helper()
	id := ledger.NewID()
	e.accounts(ledger.System, ledger.Account{ID: id, Owner: owner, Kind: ledger.KindRenter})
	if issued > 0 {
		e.ok(ledger.System, ledger.Transfer{ID: ledger.NewID(), DebitAccountID: e.issuance, CreditAccountID: id, Amount: issued})
	}
	return id
}

func (e *env) transfers(c ledger.Caller, ts ...ledger.Transfer) []ledger.TransferResult {
	e.t.Helper()
	res, err := e.l.CreateTransfers(context.Background(), c, ts)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

func (e *env) ok(c ledger.Caller, t ledger.Transfer) ledger.Transfer {
	e.t.Helper()
	r := e.transfers(c, t)[0]
	if r.Err != nil {
		e.t.Fatal(r.Err)
	}
	return r.Transfer
}

func (e *env) balance(id ledger.ID) ledger.Amount {
	e.t.Helper()
	a, err := e.store.Account(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return a.Balance()
}

// checkBooks asserts, from the database, that balances sum to zero, none
// that must not be is negative, and the stored balances equal a replay of
// the log.
func (e *env) checkBooks() {
	e.t.Helper()
	ctx := context.Background()
	accts, err := e.store.Accounts(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var sum, pending ledger.Amount
	for _, a := range accts {
		sum += a.Balance()
		pending += a.CreditsPending - a.DebitsPending
		if a.Flags&ledger.AccountAllowNegative == 0 && a.Available() < 0 {
			e.t.Fatalf("account %s (%s) negative: %s", a.ID, a.Owner, a.Available())
		}
	}
	if sum != 0 || pending != 0 {
		e.t.Fatalf("books do not balance: sum %s, pending sum %s", sum, pending)
	}
	r := ledger.NewReplay()
	err = e.store.ScanLog(ctx, func(i int64, leaf []byte) error {
		en, err := ledger.DecodeEntry(leaf)
		if err != nil {
			return err
		}
		return r.Apply(en)
	})
	if err != nil {
		e.t.Fatalf("replay: %v", err)
	}
	replayed := r.Accounts()
	for _, a := range accts {
		if ra := replayed[a.ID]; ra.Balance() != a.Balance() || ra.DebitsPending != a.DebitsPending {
			e.t.Fatalf("account %s: stored %s, replayed %s", a.ID, a.Balance(), ra.Balance())
		}
	}
}

func TestLinkedBatchAllOrNothing(t *testing.T) {
	e := newEnv(t, ledger.Config{})
	alice := e.renter("alice", 10*sp)
	bob := e.renter("bob", 0)
	carol := e.renter("carol", 0)
	a := ledger.Caller{Principal: "alice"}
	res := e.transfers(a,
		ledger.Transfer{ID: ledger.NewID(), DebitAccountID: alice, CreditAccountID: bob, Amount: 6 * sp, Flags: ledger.Linked},
		ledger.Transfer{ID: ledger.NewID(), DebitAccountID: alice, CreditAccountID: carol, Amount: 6 * sp}, // overdraws: the chain fails
		ledger.Transfer{ID: ledger.NewID(), DebitAccountID: alice, CreditAccountID: carol, Amount: 1 * sp}, // not linked: commits
	)
	if coded.CodeOf(res[0].Err) != ledger.CodeLinkedEventFailed || coded.CodeOf(res[1].Err) != ledger.CodeInsufficientFunds || res[2].Err != nil {
		t.Fatalf("results: %v / %v / %v", res[0].Err, res[1].Err, res[2].Err)
	}
	if got := [3]ledger.Amount{e.balance(alice), e.balance(bob), e.balance(carol)}; got != [3]ledger.Amount{9 * sp, 0, 1 * sp} {
		t.Fatalf("balances alice, bob, carol = %v, want 9, 0, 1 SP", got)
	}
	t.Run("ChainOpenAtEnd", func(t *testing.T) {
		res := e.transfers(a, ledger.Transfer{ID: ledger.NewID(), DebitAccountID: alice, CreditAccountID: bob, Amount: 1, Flags: ledger.Linked})
		if coded.CodeOf(res[0].Err) != ledger.CodeLinkedChainOpen {
			t.Fatalf("got %v", res[0].Err)
		}
	})
	e.checkBooks()
}

func TestIdempotentAcrossRestart(t *testing.T) {
	e := newEnv(t, ledger.Config{})
	alice := e.renter("alice", 10*sp)
	bob := e.renter("bob", 0)
	tr := ledger.Transfer{ID: ledger.NewID(), DebitAccountID: alice, CreditAccountID: bob, Amount: 4 * sp}
	first := e.ok(ledger.Caller{Principal: "alice"}, tr)
	hold := e.ok(ledger.Caller{Principal: "alice"}, ledger.Transfer{ID: ledger.NewID(), DebitAccountID: alice, CreditAccountID: bob, Amount: 5 * sp, Flags: ledger.Pending})
	e.restart()
	r := e.transfers(ledger.Caller{Principal: "alice"}, tr)[0]
	if r.Err != nil || !r.Existed || r.Transfer != first {
		t.Fatalf("retry after restart: %+v, want the original %+v", r, first)
	}
	if e.balance(bob) != 4*sp {
		t.Fatalf("bob %s, want 4 SP exactly once", e.balance(bob))
	}
	// The hold survived the restart: its funds are still reserved.
	res := e.transfers(ledger.Caller{Principal: "alice"}, ledger.Transfer{ID: ledger.NewID(), DebitAccountID: alice, CreditAccountID: bob, Amount: 2 * sp})
	if coded.CodeOf(res[0].Err) != ledger.CodeInsufficientFunds {
		t.Fatalf("spending reserved funds after restart: %v", res[0].Err)
	}
	post := e.ok(ledger.Caller{Principal: "bob"}, ledger.Transfer{ID: ledger.NewID(), PendingID: hold.ID, Flags: ledger.PostPending, Amount: 3 * sp})
	if post.Amount != 3*sp || e.balance(alice) != 3*sp || e.balance(bob) != 7*sp {
		t.Fatalf("after post: alice %s bob %s", e.balance(alice), e.balance(bob))
	}
	e.checkBooks()
}

func TestHoldExpiresThroughWriter(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	e := newEnv(t, ledger.Config{Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	alice := e.renter("alice", 10*sp)
	bob := e.renter("bob", 0)
	hold := e.ok(ledger.Caller{Principal: "alice"}, ledger.Transfer{ID: ledger.NewID(), DebitAccountID: alice, CreditAccountID: bob, Amount: 10 * sp, Flags: ledger.Pending, Timeout: 1})
	clock.Add(int64(2 * time.Second))
	// The writer expires due holds before the next batch it processes, and on
	// its own timer; poll until the expiry is durable.
	deadline := time.Now().Add(30 * time.Second)
	for {
		e.transfers(ledger.System) // an empty batch wakes the writer
		a, err := e.store.Account(context.Background(), alice)
		if err != nil {
			t.Fatal(err)
		}
		if a.DebitsPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("hold did not expire")
		}
		time.Sleep(20 * time.Millisecond)
	}
	res := e.transfers(ledger.Caller{Principal: "bob"}, ledger.Transfer{ID: ledger.NewID(), PendingID: hold.ID, Flags: ledger.PostPending})
	if coded.CodeOf(res[0].Err) != ledger.CodeHoldExpired {
		t.Fatalf("post after expiry: %v", res[0].Err)
	}
	if e.balance(alice) != 10*sp {
		t.Fatalf("alice %s after expiry, want all 10 SP back", e.balance(alice))
	}
	e.checkBooks()
}

func TestConcurrentClientsGroupCommit(t *testing.T) {
	var trees atomic.Int64
	var mu sync.Mutex
	var last tlog.Tree
	e := newEnv(t, ledger.Config{OnCommit: func(tr tlog.Tree) {
		trees.Add(1)
		mu.Lock()
		last = tr
		mu.Unlock()
	}})
	const accounts, clients, perClient = 8, 16, 100
	ids := make([]ledger.ID, accounts)
	for i := range ids {
		ids[i] = e.renter("r", 100*sp)
	}
	var wg sync.WaitGroup
	var okCount, rejected atomic.Int64
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; i < perClient; i++ {
				tr := ledger.Transfer{ID: ledger.NewID(), DebitAccountID: ids[(c+i)%accounts], CreditAccountID: ids[(c+2*i+1)%accounts], Amount: ledger.Amount(1+(c*i)%50) * sp}
				if tr.DebitAccountID == tr.CreditAccountID {
					continue
				}
				res, err := e.l.CreateTransfers(context.Background(), ledger.System, []ledger.Transfer{tr})
				if err != nil {
					t.Error(err)
					return
				}
				if res[0].Err == nil {
					okCount.Add(1)
				} else if coded.CodeOf(res[0].Err) == ledger.CodeInsufficientFunds {
					rejected.Add(1)
				} else {
					t.Error(res[0].Err)
				}
			}
		}(c)
	}
	wg.Wait()
	var n int64
	if err := e.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM transfers WHERE debit_account_id <> $1`, [16]byte(e.issuance)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != okCount.Load() {
		t.Fatalf("%d transfers acknowledged, %d in the database", okCount.Load(), n)
	}
	size, _ := e.store.LogSize(context.Background())
	mu.Lock()
	defer mu.Unlock()
	if last.N != size {
		t.Fatalf("last committed tree %d, log size %d", last.N, size)
	}
	t.Logf("%d committed, %d insufficient funds, %d group commits", okCount.Load(), rejected.Load(), trees.Load())
	e.checkBooks()
}

// flakyStore is the real PostgreSQL store with injected commit failures:
// every fifth commit fails, alternately before writing and after writing
// (the ambiguous case: durable, but the ledger is told it failed).
type flakyStore struct {
	*postgres.Store
	n atomic.Int64
}

func (f *flakyStore) Commit(ctx context.Context, c *ledger.Commit) error {
	n := f.n.Add(1)
	if n%5 != 0 {
		return f.Store.Commit(ctx, c)
	}
	if n%10 == 0 {
		if err := f.Store.Commit(ctx, c); err != nil {
			return err
		}
	}
	return errInjected
}

var errInjected = coded.New("injected", "injected commit failure")

func TestCommitFailuresLoseAndDuplicateNothing(t *testing.T) {
	pg := postgres.New(pgtest.MustOpenDB(t))
	flaky := &flakyStore{Store: pg}
	ctx := context.Background()
	l, err := ledger.Open(ctx, flaky, ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Set-up goes through retries too.
	retry := func(f func() error) {
		t.Helper()
		for i := 0; ; i++ {
			err := f()
			if err == nil {
				return
			}
			if !ledger.IsUnavailable(err) || i > 100 {
				t.Fatal(err)
			}
		}
	}
	issuance := ledger.NewID()
	const accounts = 6
	ids := make([]ledger.ID, accounts)
	accts := []ledger.Account{{ID: issuance, Owner: "hub", Kind: ledger.KindIssuance, Flags: ledger.AccountAllowNegative}}
	var issue []ledger.Transfer
	for i := range ids {
		ids[i] = ledger.NewID()
		accts = append(accts, ledger.Account{ID: ids[i], Owner: "r", Kind: ledger.KindRenter})
		issue = append(issue, ledger.Transfer{ID: ledger.NewID(), DebitAccountID: issuance, CreditAccountID: ids[i], Amount: 50 * sp})
	}
	retry(func() error { _, err := l.CreateAccounts(ctx, ledger.System, accts); return err })
	retry(func() error { _, err := l.CreateTransfers(ctx, ledger.System, issue); return err })

	var mu sync.Mutex
	acked := map[ledger.ID]ledger.Transfer{}
	var wg sync.WaitGroup
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; i < 60; i++ {
				tr := ledger.Transfer{ID: ledger.NewID(), DebitAccountID: ids[(c+i)%accounts], CreditAccountID: ids[(c+i+1)%accounts], Amount: ledger.Amount(1+i%7) * sp}
				for {
					res, err := l.CreateTransfers(ctx, ledger.System, []ledger.Transfer{tr})
					if ledger.IsUnavailable(err) {
						continue // retry with the same ID
					}
					if err != nil {
						t.Error(err)
						return
					}
					if res[0].Err == nil {
						mu.Lock()
						if prev, ok := acked[tr.ID]; ok && prev != res[0].Transfer {
							t.Errorf("transfer %s acknowledged twice with different results", tr.ID)
						}
						acked[tr.ID] = res[0].Transfer
						mu.Unlock()
					}
					break
				}
			}
		}(c)
	}
	wg.Wait()
	if flaky.n.Load() < 10 {
		t.Fatalf("only %d commits: the failure injection did not run", flaky.n.Load())
	}
	for id, want := range acked {
		got, err := pg.Transfer(ctx, id)
		if err != nil || got != want {
			t.Fatalf("acknowledged transfer %s: database has %+v (%v), acknowledged %+v", id, got, err, want)
		}
	}
	var rows int
	if err := pg.Pool().QueryRow(ctx, `SELECT count(*) FROM transfers WHERE debit_account_id <> $1`, [16]byte(issuance)).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != len(acked) {
		t.Fatalf("%d acknowledged transfers, %d in the database", len(acked), rows)
	}
	t.Logf("%d commits (every 5th failed), %d transfers acknowledged", flaky.n.Load(), len(acked))
	e := &env{t: t, store: pg}
	e.checkBooks()
}

// gatedStore is the real PostgreSQL store whose commits can be held at a
// gate, and which records how many transfers each commit wrote.
type gatedStore struct {
	*postgres.Store
	mu      sync.Mutex
	gate    chan struct{} // non-nil: the next commit waits for it to close
	entered chan struct{}
	sizes   []int
}

func (g *gatedStore) Commit(ctx context.Context, c *ledger.Commit) error {
	g.mu.Lock()
	gate := g.gate
	g.gate = nil
	g.mu.Unlock()
	if gate != nil {
		close(g.entered)
		<-gate
	}
	err := g.Store.Commit(ctx, c)
	g.mu.Lock()
	g.sizes = append(g.sizes, len(c.Transfers))
	g.mu.Unlock()
	return err
}

// Requests that arrive while a commit is in flight are committed together,
// in the very next commit: none waits behind a group that was cut before it
// arrived.
func TestArrivalsDuringACommitShareTheNextCommit(t *testing.T) {
	store := &gatedStore{Store: postgres.New(pgtest.MustOpenDB(t))}
	e := &env{t: t, store: store.Store, issuance: ledger.NewID()}
	l, err := ledger.Open(context.Background(), store, ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	e.l = l
	e.accounts(ledger.System, ledger.Account{ID: e.issuance, Owner: "hub", Kind: ledger.KindIssuance, Flags: ledger.AccountAllowNegative})
	a, b := e.renter("a", 100*sp), e.renter("b", 0)

	gate := make(chan struct{})
	store.mu.Lock()
	store.gate, store.entered = gate, make(chan struct{})
	before := len(store.sizes)
	store.mu.Unlock()
	first := make(chan []ledger.TransferResult, 1)
	go func() {
		res, err := l.CreateTransfers(context.Background(), ledger.System, []ledger.Transfer{{ID: ledger.NewID(), DebitAccountID: a, CreditAccountID: b, Amount: sp}})
		if err != nil {
			t.Error(err)
		}
		first <- res
	}()
	<-store.entered // the first transfer's commit is in flight

	const n = 20
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := l.CreateTransfers(context.Background(), ledger.System, []ledger.Transfer{{ID: ledger.NewID(), DebitAccountID: a, CreditAccountID: b, Amount: sp}})
			if err != nil {
				t.Error(err)
			} else if res[0].Err != nil {
				t.Error(res[0].Err)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // every request is queued behind the gate
	close(gate)
	wg.Wait()
	if res := <-first; res == nil || res[0].Err != nil {
		t.Fatalf("first transfer: %+v", res)
	}
	store.mu.Lock()
	sizes := slices.Clone(store.sizes[before:])
	store.mu.Unlock()
	if !slices.Equal(sizes, []int{1, n}) {
		t.Fatalf("commits wrote %v transfers; want [1 %d]: the first, then every transfer that arrived during it", sizes, n)
	}
	if got := e.balance(b); got != (n+1)*sp {
		t.Fatalf("b holds %s; want %s", got, ledger.Amount((n+1)*sp))
	}
	e.checkBooks()
}

// racingStore is the real store; while a ledger loads, race runs once: a
// crashed hub's last commit, sent before the crash and still being executed
// by the database, lands while its restarted process reads the log.
type racingStore struct {
	*postgres.Store
	race func()
	once sync.Once
}

func (r *racingStore) Load(ctx context.Context, fn func(index int64, leaf []byte) error) ([]ledger.Account, error) {
	return r.Store.Load(ctx, func(i int64, leaf []byte) error {
		r.once.Do(r.race)
		return fn(i, leaf)
	})
}

// A ledger opened while another writer's last commit lands starts (its
// log and balances read together, from before that commit), then its first
// commit meets that commit's log index, fails, and reloads: the retry
// commits, the other writer's transfer is known, and the books balance.
// Read apart, the log ended before that commit and the balances included
// it, and the hub refused to start ("stored balances ... differ").
func TestOpenWhileACrashedWritersLastCommitLands(t *testing.T) {
	e := newEnv(t, ledger.Config{})
	alice, bob := e.renter("alice", 100*sp), e.renter("bob", 0)
	last := ledger.Transfer{ID: ledger.NewID(), DebitAccountID: alice, CreditAccountID: bob, Amount: 10 * sp}
	rs := &racingStore{Store: e.store, race: func() {
		e.ok(ledger.System, last)
		e.l.Close() // the crashed process writes nothing more
	}}
	ctx := context.Background()
	l, err := ledger.Open(ctx, rs, ledger.Config{})
	if err != nil {
		t.Fatalf("open while another writer's commit lands: %v", err)
	}
	defer l.Close()

	next := []ledger.Transfer{{ID: ledger.NewID(), DebitAccountID: alice, CreditAccountID: bob, Amount: 5 * sp}}
	res, err := l.CreateTransfers(ctx, ledger.System, next)
	if ledger.IsUnavailable(err) {
		// The commit met the other writer's log index; the ledger has
		// reloaded, and the same request is sent again.
		res, err = l.CreateTransfers(ctx, ledger.System, next)
	}
	if err != nil || res[0].Err != nil {
		t.Fatalf("transfer after the reload: %v %+v", err, res)
	}
	res, err = l.CreateTransfers(ctx, ledger.System, []ledger.Transfer{last})
	if err != nil || res[0].Err != nil || !res[0].Existed {
		t.Fatalf("the other writer's transfer sent again: %v %+v; want it found committed", err, res)
	}
	if got := e.balance(bob); got != 15*sp {
		t.Fatalf("bob holds %s; want 15 SP", got)
	}
	e.checkBooks()
}
