package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"filippo.io/torchwood"
	"github.com/spiceroute/spiceroute/hub/audit"
	"github.com/spiceroute/spiceroute/hub/client"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/postgres"
	"github.com/spiceroute/spiceroute/hub/postgres/pgtest"
	"github.com/spiceroute/spiceroute/hub/translog"
)

// bank is the state of the bank test, shared by its clients.
type bank struct {
	t        *testing.T
	accounts []ledger.ID

	mu       sync.Mutex
	acked    map[ledger.ID]ledger.Transfer // every transfer the hub acknowledged
	kinds    map[string]int                // acknowledged, by kind
	rejected map[coded.Code]int            // definitive rejections, by code
	existed  int                           // replies that were an earlier commit of the same ID
	retries  atomic.Int64                  // requests retried after a crash, 503 or network error
}

// ack records an acknowledged transfer; two acknowledgements of one ID
// must be the same committed transfer.
func (b *bank) ack(kind string, r ledger.TransferResult) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if prev, ok := b.acked[r.Transfer.ID]; ok {
		if prev != r.Transfer {
			b.t.Errorf("transfer %s acknowledged twice with different results:\n %+v\n %+v", r.Transfer.ID, prev, r.Transfer)
		}
		b.existed++
		return
	}
	if r.Existed {
		b.existed++
	}
	b.acked[r.Transfer.ID] = r.Transfer
	b.kinds[kind]++
}

func (b *bank) reject(err error) {
	b.mu.Lock()
	b.rejected[coded.CodeOf(err)]++
	b.mu.Unlock()
}

func (b *bank) ackedCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.acked)
}

// retryable reports whether err means "not answered": the hub was down,
// restarting, or could not commit. The same request is sent again.
func retryable(err error) bool {
	switch s := client.StatusOf(err); {
	case s == 0:
		return true // connection refused or reset: the hub is down
	case s == http.StatusServiceUnavailable, s == http.StatusTooManyRequests, s >= 500:
		return true
	}
	return false
}

// until retries f until it gets a definitive answer, or the test has
// failed (a hub that cannot restart answers nothing, ever).
func (b *bank) until(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil || !retryable(err) || ctx.Err() != nil || b.t.Failed() {
			return err
		}
		b.retries.Add(1)
		time.Sleep(time.Duration(5+rand.IntN(20)) * time.Millisecond)
	}
}

// twice sends the same request twice concurrently, each retried until
// definitive: a duplicated client retry racing itself.
func twice[T any](b *bank, ctx context.Context, f func() (T, error)) [2]T {
	var out [2]T
	var errs [2]error
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.until(ctx, func() error {
				var err error
				out[i], err = f()
				return err
			})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			var ce *coded.Error
			if !errors.As(err, &ce) {
				b.t.Errorf("unexpected error: %v", err)
			}
			b.reject(err)
		}
	}
	return out
}

// TestBank is the ledger's crash test: 64 accounts with a fixed issued
// total; 32 clients making plain transfers, holds that are posted (in full
// or in part), voided or left to expire, and linked batches; every request
// sent twice concurrently with the same ID and retried until answered;
// meanwhile the hub process is killed with SIGKILL at random and restarted,
// at least 20 times. Afterwards every acknowledged transfer is in the
// database and in the log exactly once, the balances sum to the issued
// total with none negative, and `spice ledger verify` agrees.
func TestBank(t *testing.T) {
	const (
		nAccounts   = 64
		nClients    = 32
		minAcked    = 20_000
		minKills    = 20
		perAccount  = 1000 * ledger.MicroPerSpice
		issuedTotal = nAccounts * perAccount
	)
	dbURL := pgtest.NewDB(t)
	h := startHubProc(t, "bank.e2e.spiceroute.local", dbURL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()

	opToken, err := run(t, nil, "hub", "token", "-database", dbURL, "-principal", "op", "-role", "operator")
	if err != nil {
		t.Fatal(err)
	}
	bankToken, err := run(t, nil, "hub", "token", "-database", dbURL, "-principal", "bank", "-role", "renter")
	if err != nil {
		t.Fatal(err)
	}
	op := client.New(h.url, strings.TrimSpace(opToken))
	info, err := op.Hub(ctx)
	if err != nil {
		t.Fatal(err)
	}
	issuance := info.SystemAccounts["issuance"]
	b := &bank{t: t, acked: map[ledger.ID]ledger.Transfer{}, kinds: map[string]int{}, rejected: map[coded.Code]int{}}
	var accts []ledger.Account
	var issue []ledger.Transfer
	for i := 0; i < nAccounts; i++ {
		id := ledger.NewID()
		b.accounts = append(b.accounts, id)
		accts = append(accts, ledger.Account{ID: id, Owner: "bank", Kind: ledger.KindRenter})
		issue = append(issue, ledger.Transfer{ID: ledger.NewID(), DebitAccountID: issuance, CreditAccountID: id, Amount: perAccount})
	}
	if _, err := op.CreateAccounts(ctx, accts); err != nil {
		t.Fatal(err)
	}
	res, err := op.CreateTransfers(ctx, issue)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}

	// The killer: SIGKILL the hub at random moments and restart it.
	var kills atomic.Int64
	stopKiller := make(chan struct{})
	killerDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		for {
			select {
			case <-stopKiller:
				return
			case <-time.After(time.Duration(300+rand.IntN(900)) * time.Millisecond):
			}
			h.stop(syscall.SIGKILL)
			kills.Add(1)
			if err := h.start(); err != nil {
				t.Errorf("restart after kill %d: %v", kills.Load(), err)
				return
			}
		}
	}()

	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < nClients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			b.client(ctx, client.New(h.url, strings.TrimSpace(bankToken), client.WithTimeout(20*time.Second)), uint64(c), func() bool {
				return b.ackedCount() >= minAcked && kills.Load() >= minKills || t.Failed()
			})
		}(c)
	}
	wg.Wait()
	close(stopKiller)
	<-killerDone
	elapsed := time.Since(start)
	if t.Failed() {
		return
	}

	// Let the last checkpoint cover everything, then check the books.
	store, err := postgres.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	size, err := store.LogSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vkey := info.LogPublicKey
	var signed []byte
	var lastCheck string
	defer func() {
		if t.Failed() {
			t.Log("last checkpoint check:", lastCheck)
		}
	}()
	waitFor(t, "a checkpoint covering the whole log", 60*time.Second, func() bool {
		resp, err := http.Get(h.url + "/log/checkpoint")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		signed, _ = io.ReadAll(resp.Body)
		cp, err := translog.VerifyCheckpoint(signed, vkey)
		if err != nil || cp.N < size {
			lastCheck = fmt.Sprintf("checkpoint %d (err %v), log size %d", cp.N, err, size)
		}
		// Expiring holds keep committing after the clients stop, so the
		// checkpoint may pass size.
		return err == nil && cp.N >= size
	})

	// 1. Every acknowledged transfer is in the database, as acknowledged.
	for id, want := range b.acked {
		got, err := store.Transfer(ctx, id)
		if err != nil {
			t.Fatalf("acknowledged transfer %s is not in the database: %v", id, err)
		}
		if got != want {
			t.Fatalf("transfer %s: database %+v, acknowledged %+v", id, got, want)
		}
	}
	// 2. ... and in the log exactly once, read by a third-party client.
	cp, err := translog.VerifyCheckpoint(signed, vkey)
	if err != nil {
		t.Fatal(err)
	}
	fetcher, err := torchwood.NewTileFetcher(h.url + "/log/")
	if err != nil {
		t.Fatal(err)
	}
	tw, err := torchwood.NewClient(fetcher)
	if err != nil {
		t.Fatal(err)
	}
	inLog := map[ledger.ID]int{}
	logTransfers := 0
	for _, leaf := range tw.AllEntries(ctx, cp.Tree, 0) {
		e, err := ledger.DecodeEntry(leaf)
		if err != nil {
			t.Fatal(err)
		}
		if e.Transfer != nil {
			inLog[e.Transfer.ID]++
			logTransfers++
		}
	}
	if err := tw.Err(); err != nil {
		t.Fatal(err)
	}
	for id := range b.acked {
		if n := inLog[id]; n != 1 {
			t.Fatalf("acknowledged transfer %s is in the log %d times", id, n)
		}
	}
	var dbTransfers int
	if err := store.Pool().QueryRow(ctx, `SELECT count(*) FROM transfers WHERE log_index < $1`, cp.N).Scan(&dbTransfers); err != nil {
		t.Fatal(err)
	}
	if dbTransfers != logTransfers {
		t.Fatalf("%d transfers in the database below log index %d, %d in the log", dbTransfers, cp.N, logTransfers)
	}
	// 3. The books: bank balances sum to the issued total, none negative.
	all, err := store.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var bankSum, allSum ledger.Amount
	for _, a := range all {
		allSum += a.Balance()
		if a.Owner == "bank" {
			bankSum += a.Balance()
			if a.Available() < 0 || a.Balance() < 0 {
				t.Fatalf("account %s is negative: balance %s, available %s", a.ID, a.Balance(), a.Available())
			}
		}
		if a.ID == issuance && a.Balance() != -issuedTotal {
			t.Fatalf("issuance balance %s, want %s", a.Balance(), -issuedTotal)
		}
	}
	if bankSum != issuedTotal || allSum != 0 {
		t.Fatalf("bank balances sum to %s (want %s); all balances sum to %s (want 0)", bankSum, ledger.Amount(issuedTotal), allSum)
	}
	// 4. The auditor, as a separate process, agrees.
	out, err := run(t, nil, "ledger", "verify", "-address", h.url, "-key", vkey, "-database", dbURL, "-json")
	if err != nil {
		t.Fatalf("spice ledger verify: %v", err)
	}
	var rep audit.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("spice ledger verify -json: %v\n%s", err, out)
	}
	if rep.TotalIssued != issuedTotal || !rep.DBChecked || rep.TreeSize < size {
		t.Fatalf("ledger verify: issued %s (want %s), db checked %v, tree %d (want >= %d)", rep.TotalIssued, ledger.Amount(issuedTotal), rep.DBChecked, rep.TreeSize, size)
	}

	var codes []string
	for c, n := range b.rejected {
		codes = append(codes, fmt.Sprintf("%s=%d", c, n))
	}
	sort.Strings(codes)
	t.Logf("bank: %d transfers acknowledged in %s (%v); %d hub kills (SIGKILL) and restarts; %d duplicate replies were the original commit; %d retries; rejections: %s",
		len(b.acked), elapsed.Round(time.Second), b.kinds, kills.Load(), b.existed, b.retries.Load(), strings.Join(codes, " "))
	t.Logf("bank: database %d transfers = log %d transfers, each acknowledged one exactly once; balances sum to the issued %s; no negative balance; spice ledger verify OK at tree size %d",
		dbTransfers, logTransfers, ledger.Amount(issuedTotal), rep.TreeSize)
}

// client is one bank client: random operations until done() says stop.
func (b *bank) client(ctx context.Context, c *client.Client, seed uint64, done func() bool) {
	rng := rand.New(rand.NewPCG(seed, 7))
	var holds []ledger.Transfer
	pick := func() (ledger.ID, ledger.ID) {
		i := rng.IntN(len(b.accounts))
		j := (i + 1 + rng.IntN(len(b.accounts)-1)) % len(b.accounts)
		return b.accounts[i], b.accounts[j]
	}
	amount := func() ledger.Amount { return ledger.Amount(1+rng.IntN(20_000)) * 1000 } // 0.001 to 20 SP
	for !done() && ctx.Err() == nil {
		switch op := rng.IntN(100); {
		case op < 50: // a plain transfer
			dr, cr := pick()
			tr := ledger.Transfer{ID: ledger.NewID(), DebitAccountID: dr, CreditAccountID: cr, Amount: amount(), Code: 1}
			for _, r := range twice(b, ctx, func() (ledger.TransferResult, error) { return c.CreateTransfer(ctx, tr) }) {
				if r.Transfer.ID == tr.ID {
					b.ack("plain", r)
				}
			}
		case op < 65: // a hold; a quarter of them time out after a second
			dr, cr := pick()
			timeout := uint32(60)
			if rng.IntN(4) == 0 {
				timeout = 1
			}
			tr := ledger.Transfer{ID: ledger.NewID(), DebitAccountID: dr, CreditAccountID: cr, Amount: amount(), Flags: ledger.Pending, Timeout: timeout, Code: 2}
			for _, r := range twice(b, ctx, func() (ledger.TransferResult, error) { return c.CreateTransfer(ctx, tr) }) {
				if r.Transfer.ID == tr.ID {
					b.ack("pending", r)
					if len(holds) == 0 || holds[len(holds)-1].ID != tr.ID {
						holds = append(holds, r.Transfer)
					}
				}
			}
		case op < 80 && len(holds) > 0: // post (in full or in part) or void a hold
			k := rng.IntN(len(holds))
			h := holds[k]
			holds = append(holds[:k], holds[k+1:]...)
			id := ledger.NewID()
			kind, post := "void", rng.IntN(3) > 0
			var amt ledger.Amount
			if post {
				kind = "post"
				if rng.IntN(2) == 0 {
					amt = 1 + ledger.Amount(rng.Int64N(int64(h.Amount)))
				}
			}
			for _, r := range twice(b, ctx, func() (ledger.TransferResult, error) {
				if post {
					return c.PostHold(ctx, h.ID, id, amt)
				}
				return c.VoidHold(ctx, h.ID, id)
			}) {
				if r.Transfer.ID == id {
					b.ack(kind, r)
				}
			}
		default: // a linked chain of 2 to 4 transfers: all or nothing
			n := 2 + rng.IntN(3)
			chain := make([]ledger.Transfer, n)
			for i := range chain {
				dr, cr := pick()
				chain[i] = ledger.Transfer{ID: ledger.NewID(), DebitAccountID: dr, CreditAccountID: cr, Amount: amount() * 5, Code: 3}
				if i < n-1 {
					chain[i].Flags = ledger.Linked
				}
			}
			for _, res := range twice(b, ctx, func() ([]ledger.TransferResult, error) { return c.CreateTransfers(ctx, chain) }) {
				ok := 0
				for _, r := range res {
					if r.Err == nil {
						ok++
					}
				}
				if ok != 0 && ok != len(res) {
					b.t.Errorf("linked chain partly committed: %d of %d", ok, len(res))
				}
				for _, r := range res {
					if r.Err == nil {
						b.ack("linked", r)
					} else {
						b.reject(r.Err)
					}
				}
			}
		}
	}
}
