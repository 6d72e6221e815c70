package hub_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/torchwood"
	"github.com/spiceroute/spiceroute/hub"
	"github.com/spiceroute/spiceroute/hub/audit"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/postgres"
	"github.com/spiceroute/spiceroute/hub/postgres/pgtest"
	"github.com/spiceroute/spiceroute/hub/translog"
	"golang.org/x/mod/sumdb/note"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// startHub opens and runs a hub on a fresh database; it stops at cleanup.
func startHub(t *testing.T) *hub.Server {
	t.Helper()
	cfg := hub.DefaultConfig()
	cfg.Name = "test.spiceroute.local"
	cfg.Listen = "127.0.0.1:0"
	cfg.DatabaseURL = pgtest.NewDB(t)
	cfg.KeyFile = filepath.Join(t.TempDir(), "hub.key")
	cfg.CheckpointInterval = 100 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := hub.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub run: %v", err)
		}
		s.Close()
	})
	return s
}

// fill creates n renters funded with 100 SP each and moves Spice between
// them in transfers rounds, returning the total issued.
func fill(t *testing.T, s *hub.Server, n, transfers int) ledger.Amount {
	t.Helper()
	ctx := context.Background()
	ids := make([]ledger.ID, n)
	var accts []ledger.Account
	var issue []ledger.Transfer
	for i := range ids {
		ids[i] = ledger.NewID()
		accts = append(accts, ledger.Account{ID: ids[i], Owner: "renter", Kind: ledger.KindRenter})
		issue = append(issue, ledger.Transfer{ID: ledger.NewID(), DebitAccountID: s.IssuanceAccount(), CreditAccountID: ids[i], Amount: 100 * ledger.MicroPerSpice})
	}
	mustOK(t, must(s.Ledger.CreateAccounts(ctx, ledger.System, accts)))
	mustOK(t, must(s.Ledger.CreateTransfers(ctx, ledger.System, issue)))
	for k := 0; k < transfers; k += 50 {
		var ts []ledger.Transfer
		for j := 0; j < 50 && k+j < transfers; j++ {
			i := (k + j) % n
			ts = append(ts, ledger.Transfer{ID: ledger.NewID(), DebitAccountID: ids[i], CreditAccountID: ids[(i+1)%n], Amount: ledger.Amount(1 + j)})
		}
		mustOK(t, must(s.Ledger.CreateTransfers(ctx, ledger.System, ts)))
	}
	return ledger.Amount(n) * 100 * ledger.MicroPerSpice
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func mustOK[T ledger.AccountResult | ledger.TransferResult](t *testing.T, res []T) {
	t.Helper()
	for _, r := range res {
		switch r := any(r).(type) {
		case ledger.AccountResult:
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		case ledger.TransferResult:
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}
}

// waitCheckpoint polls until the published checkpoint covers the whole log.
func waitCheckpoint(t *testing.T, s *hub.Server) []byte {
	t.Helper()
	ctx := context.Background()
	size, err := s.Store.LogSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.URL() + "/log/checkpoint")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if cp, err := translog.VerifyCheckpoint(b, s.VKey); err == nil && cp.N == size {
				return b
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of size %d within 30s", size)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTorchwoodReadsHubLog: a third-party c2sp.org/tlog-tiles client
// (filippo.io/torchwood) reads and authenticates the whole log of a running
// hub, and every entry is a ledger row of the hub's database.
func TestTorchwoodReadsHubLog(t *testing.T) {
	s := startHub(t)
	fill(t, s, 20, 700) // 5 system + 20 accounts + 20 issues + 700 transfers: 745 leaves, two full tiles and a partial
	signed := waitCheckpoint(t, s)

	v, err := note.NewVerifier(s.VKey)
	if err != nil {
		t.Fatal(err)
	}
	cp, _, err := torchwood.VerifyCheckpoint(signed, torchwood.ThresholdPolicy(2, torchwood.OriginPolicy("test.spiceroute.local"), torchwood.SingleVerifierPolicy(v)))
	if err != nil {
		t.Fatalf("torchwood rejects the hub's checkpoint: %v", err)
	}
	if cp.Origin != "test.spiceroute.local" || cp.N != 745 {
		t.Fatalf("checkpoint origin %q size %d, want test.spiceroute.local 745", cp.Origin, cp.N)
	}
	fetcher, err := torchwood.NewTileFetcher(s.URL() + "/log/")
	if err != nil {
		t.Fatal(err)
	}
	client, err := torchwood.NewClient(fetcher)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var n int64
	transfers := 0
	for i, entry := range client.AllEntries(ctx, cp.Tree, 0) {
		if i != n {
			t.Fatalf("entry %d out of order", i)
		}
		e, err := ledger.DecodeEntry(entry)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if e.Transfer != nil {
			transfers++
			row, err := s.Store.Transfer(ctx, e.Transfer.ID)
			if err != nil || row.LogIndex != i || row.Amount != e.Transfer.Amount {
				t.Fatalf("entry %d: transfer %s: database has %+v, %v", i, e.Transfer.ID, row, err)
			}
		}
		n++
	}
	if err := client.Err(); err != nil {
		t.Fatalf("torchwood client: %v", err)
	}
	if n != 745 || transfers != 720 {
		t.Fatalf("read %d entries (%d transfers), want 745 (720)", n, transfers)
	}
	// Inclusion proof of one entry, fetched and checked by torchwood.
	if _, _, err := client.Entry(ctx, cp.Tree, 500); err != nil {
		t.Fatalf("torchwood inclusion proof of entry 500: %v", err)
	}
}

func TestAuditPassesAndCatchesTampering(t *testing.T) {
	s := startHub(t)
	issued := fill(t, s, 10, 300)
	first := waitCheckpoint(t, s)
	ctx := context.Background()

	rep, err := audit.Verify(ctx, audit.Config{LogURL: s.URL() + "/log/", Key: s.VKey, DB: s.Store})
	if err != nil {
		t.Fatalf("audit of an honest hub: %v", err)
	}
	if rep.TotalIssued != issued || !rep.DBChecked || rep.Transfers != 310 {
		t.Fatalf("audit report: issued %s (want %s), db checked %v, %d transfers (want 310)", rep.TotalIssued, issued, rep.DBChecked, rep.Transfers)
	}

	t.Run("ConsistentWithEarlierCheckpoint", func(t *testing.T) {
		fill(t, s, 3, 20)
		waitCheckpoint(t, s)
		if _, err := audit.Verify(ctx, audit.Config{LogURL: s.URL() + "/log/", Key: s.VKey, Trusted: first}); err != nil {
			t.Fatalf("audit against the earlier checkpoint: %v", err)
		}
	})
	t.Run("WrongKey", func(t *testing.T) {
		_, vkey, err := translog.GenerateKey("test.spiceroute.local")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := audit.Verify(ctx, audit.Config{LogURL: s.URL() + "/log/", Key: vkey}); err == nil {
			t.Fatal("audit accepted a checkpoint signed by another key")
		}
	})
	t.Run("OperatorRewritesATransfer", func(t *testing.T) {
		// The operator edits history in the database: the log no longer
		// matches its signed tree, and the auditor says so.
		var logIndex int64
		err := s.Store.Pool().QueryRow(ctx, `UPDATE transfers SET amount = amount + 1000000
			WHERE log_index = (SELECT min(log_index) FROM transfers WHERE debit_account_id <> $1) RETURNING log_index`, [16]byte(s.IssuanceAccount())).Scan(&logIndex)
		if err != nil {
			t.Fatal(err)
		}
		_, err = audit.Verify(ctx, audit.Config{LogURL: s.URL() + "/log/", Key: s.VKey})
		if err == nil {
			t.Fatalf("audit passed after transfer at log index %d was rewritten", logIndex)
		}
		t.Logf("audit after tampering: %v", err)
		if !strings.Contains(err.Error(), "audit:") {
			t.Fatalf("unexpected error: %v", err)
		}
	})
}

// racingDB is the hub's real store; the first time the auditor reads the
// balances, a transfer commits just before, as on a busy hub.
type racingDB struct {
	*postgres.Store
	commit func()
	once   sync.Once
}

func (r *racingDB) Accounts(ctx context.Context) ([]ledger.Account, error) {
	r.once.Do(r.commit)
	return r.Store.Accounts(ctx)
}

// An audit with -database of a hub that commits while it is being audited
// compares a consistent state, not a torn one.
func TestAuditDatabaseCheckOnABusyHub(t *testing.T) {
	s := startHub(t)
	fill(t, s, 4, 50)
	waitCheckpoint(t, s)
	ctx := context.Background()
	accts, err := s.Store.AccountsByOwner(ctx, "renter")
	if err != nil || len(accts) < 2 {
		t.Fatal(accts, err)
	}
	db := &racingDB{Store: s.Store, commit: func() {
		mustOK(t, must(s.Ledger.CreateTransfers(ctx, ledger.System, []ledger.Transfer{
			{ID: ledger.NewID(), DebitAccountID: accts[0].ID, CreditAccountID: accts[1].ID, Amount: 1},
		})))
	}}
	rep, err := audit.Verify(ctx, audit.Config{LogURL: s.URL() + "/log/", Key: s.VKey, DB: db})
	if err != nil {
		t.Fatalf("audit of a hub committing meanwhile: %v", err)
	}
	if !rep.DBChecked || rep.DBTail < 1 {
		t.Fatalf("report: db checked %v, tail %d; want the concurrent commit replayed", rep.DBChecked, rep.DBTail)
	}
}
