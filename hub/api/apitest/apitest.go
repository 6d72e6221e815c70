// Package apitest runs the hub's API for tests on real components: a fresh
// PostgreSQL database (pgtest), the real ledger, the real transparency log
// with a checkpoint publisher, served by httptest.
//
// Tests using it need pgtest's TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestX(t *testing.T) {
//		h := apitest.New(t, api.Config{})
//		alice := h.Token(t, "alice", auth.RoleRenter)
//		...
//		h.CheckBooks(t)
//	}
package apitest

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/payout"
	"github.com/spiceroute/spiceroute/hub/postgres"
	"github.com/spiceroute/spiceroute/hub/postgres/pgtest"
	"github.com/spiceroute/spiceroute/hub/translog"
)

// Origin is the test log's origin (and key name).
const Origin = "hub.test/log"

// Hub is a running API with its components.
type Hub struct {
	URL    string // base URL of the API, e.g. http://127.0.0.1:41234
	Store  *postgres.Store
	Ledger *ledger.Ledger
	Log    *translog.Log
	API    *api.Server
	Info   api.HubInfo

	// Operator is an operator token (principal "op").
	Operator string
	// Issuance is the issuance account (owner "hub", may go negative).
	Issuance ledger.ID
	// Payouts is the payout service and PayoutAccount the account it pays
	// into (ledger.KindPayout), with WithPayouts.
	Payouts       *payout.Service
	PayoutAccount ledger.ID
}

// New starts a hub API for the test. cfg's zero fields take the defaults;
// cfg.HubInfo is filled in. Everything stops when the test ends. Logs go to
// the test log when run with -v and SPICE_TEST_LOG=1, else nowhere.
func New(tb testing.TB, cfg api.Config, opts ...Option) *Hub {
	tb.Helper()
	ctx := context.Background()
	store := postgres.New(pgtest.MustOpenDB(tb))
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("SPICE_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}

	skey, vkey, err := translog.GenerateKey(Origin)
	if err != nil {
		tb.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	tlogLog := translog.New(store, signer)
	pub := translog.NewPublisher(tlogLog, 5*time.Millisecond, logger)
	pubCtx, stopPub := context.WithCancel(ctx)
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		_ = pub.Run(pubCtx)
	}()

	l, err := ledger.Open(ctx, store, ledger.Config{OnCommit: pub.Notify, Logger: logger})
	if err != nil {
		stopPub()
		<-pubDone
		tb.Fatal(err)
	}

	h := &Hub{Store: store, Ledger: l, Log: tlogLog, Issuance: ledger.NewID()}
	cfg.HubInfo = api.HubInfo{
		Name:           "test hub",
		LogOrigin:      Origin,
		LogPublicKey:   vkey,
		SystemAccounts: map[string]ledger.ID{"issuance": h.Issuance},
	}
	h.Info = cfg.HubInfo
	deps := api.Deps{Ledger: l, Reader: store, Tokens: store, Log: tlogLog, Prices: store, Invoices: store}
	for _, o := range opts {
		o(tb, h, &deps)
	}
	h.API = api.New(cfg, deps, logger, nil)
	srv := httptest.NewServer(h.API.Handler())
	h.URL = srv.URL
	// Cleanups run last-in first-out: the server, then the ledger, then the
	// publisher, then (registered by MustOpenDB earlier) the pool.
	tb.Cleanup(func() {
		stopPub()
		<-pubDone
	})
	tb.Cleanup(func() { l.Close() })
	tb.Cleanup(srv.Close)

	res, err := l.CreateAccounts(ctx, ledger.System, []ledger.Account{{
		ID: h.Issuance, Owner: "hub", Kind: ledger.KindIssuance, Flags: ledger.AccountAllowNegative,
	}})
	if err != nil || res[0].Err != nil {
		tb.Fatalf("apitest: create issuance account: %v %v", err, res[0].Err)
	}
	h.Operator = h.Token(tb, "op", auth.RoleOperator)
	return h
}

// Option adds to the API's dependencies before it is built, e.g. a
// service over h.Store and h.Ledger (both open; no accounts exist yet).
type Option func(tb testing.TB, h *Hub, deps *api.Deps)

// Token creates a token for a principal and returns its secret.
func (h *Hub) Token(tb testing.TB, name string, role auth.Role) string {
	tb.Helper()
	secret, err := h.Store.CreateToken(context.Background(), auth.Principal{Name: name, Role: role}, "test")
	if err != nil {
		tb.Fatalf("apitest: create token for %s: %v", name, err)
	}
	return secret
}

// Issue moves amount from the issuance account to account (as operator "op"),
// returning the transfer.
func (h *Hub) Issue(tb testing.TB, to ledger.ID, amount ledger.Amount) ledger.Transfer {
	tb.Helper()
	res, err := h.Ledger.CreateTransfers(context.Background(), ledger.Caller{Principal: "op", Operator: true}, []ledger.Transfer{{
		ID: ledger.NewID(), DebitAccountID: h.Issuance, CreditAccountID: to, Amount: amount,
	}})
	if err != nil || res[0].Err != nil {
		tb.Fatalf("apitest: issue %s to %s: %v %v", amount, to, err, res[0].Err)
	}
	return res[0].Transfer
}

// WaitCheckpoint waits until a signed checkpoint covers at least size
// entries and returns its tree.
func (h *Hub) WaitCheckpoint(tb testing.TB, size int64) tlog.Tree {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, tree, err := h.Log.Checkpoint(context.Background())
		if err == nil && tree.N >= size {
			return tree
		}
		if time.Now().After(deadline) {
			tb.Fatalf("apitest: no checkpoint of %d entries after 10s (last: %d, %v)", size, tree.N, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// LogSize is the number of committed log entries.
func (h *Hub) LogSize(tb testing.TB) int64 {
	tb.Helper()
	n, err := h.Store.LogSize(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// CheckBooks checks that the books balance: the posted balances of all
// accounts sum to zero (the issuance account is negative by exactly what
// was issued), so do pending debits and credits, and every stored balance
// equals a replay of the transparency log.
func (h *Hub) CheckBooks(tb testing.TB) {
	tb.Helper()
	ctx := context.Background()
	var posted, pending, issued int64
	err := h.Store.Pool().QueryRow(ctx, `SELECT
			coalesce(sum(credits_posted - debits_posted), 0)::bigint,
			coalesce(sum(credits_pending - debits_pending), 0)::bigint,
			coalesce(sum(debits_posted - credits_posted) FILTER (WHERE kind = $1), 0)::bigint
		FROM accounts`, int16(ledger.KindIssuance)).Scan(&posted, &pending, &issued)
	if err != nil {
		tb.Fatalf("apitest: check books: %v", err)
	}
	if posted != 0 || pending != 0 {
		tb.Errorf("books do not balance: posted balances sum to %d µSP, pending to %d µSP (issued %s)", posted, pending, ledger.Amount(issued))
	}
	r := ledger.NewReplay()
	err = h.Store.ScanLog(ctx, func(_ int64, leaf []byte) error {
		e, err := ledger.DecodeEntry(leaf)
		if err != nil {
			return err
		}
		return r.Apply(e)
	})
	if err != nil {
		tb.Fatalf("apitest: replay log: %v", err)
	}
	stored, err := h.Store.Accounts(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	replayed := r.Accounts()
	if len(stored) != len(replayed) {
		tb.Errorf("store has %d accounts, the log %d", len(stored), len(replayed))
	}
	for _, a := range stored {
		b := replayed[a.ID]
		if a.DebitsPosted != b.DebitsPosted || a.CreditsPosted != b.CreditsPosted ||
			a.DebitsPending != b.DebitsPending || a.CreditsPending != b.CreditsPending {
			tb.Errorf("account %s: stored balances %+v differ from the log's replay %+v", a.ID, a, b)
		}
	}
}
