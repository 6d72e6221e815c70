package hub_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/hub"
	"github.com/spiceroute/spiceroute/hub/audit"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/payout"
	"github.com/spiceroute/spiceroute/hub/postgres/pgtest"
)

// A hub with payouts configured has its payout account, serves the
// payout API, and a paid-out ledger passes the audit.
func TestHubPayouts(t *testing.T) {
	ctx := context.Background()
	cfg := hub.DefaultConfig()
	cfg.Name = "payouts.test.spiceroute.local"
	cfg.Listen = "127.0.0.1:0"
	cfg.DatabaseURL = pgtest.NewDB(t)
	cfg.KeyFile = filepath.Join(t.TempDir(), "hub.key")
	cfg.CheckpointInterval = 100 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Payout = payout.Config{RateCents: 100, Dir: t.TempDir(), Debtor: payout.Party{Name: "Hub", IBAN: "DE89370400440532013000"}}
	s, err := hub.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub run: %v", err)
		}
		s.Close()
	})
	acct, err := s.Store.Account(ctx, hub.SystemAccountID(cfg.Name, ledger.KindPayout))
	if err != nil || acct.Kind != ledger.KindPayout || acct.Owner != hub.SystemOwner {
		t.Fatalf("payout account: %+v, %v", acct, err)
	}
	resp, err := http.Get(s.URL() + "/api/payouts/runs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /api/payouts/runs without a token: %d, want 401 (the route is served)", resp.StatusCode)
	}

	c := ledger.NewID()
	mustOK(t, must(s.Ledger.CreateAccounts(ctx, ledger.System, []ledger.Account{{ID: c, Owner: "carol", Kind: ledger.KindContributor}})))
	mustOK(t, must(s.Ledger.CreateTransfers(ctx, ledger.System, []ledger.Transfer{{ID: ledger.NewID(), DebitAccountID: s.IssuanceAccount(), CreditAccountID: c, Amount: 3 * ledger.MicroPerSpice}})))
	if _, err := s.Payouts.SetProfile(ctx, "carol", payout.ProfileRequest{LegalName: "Carol", IBAN: "NL91ABNA0417164300", Threshold: payout.MinThreshold}); err != nil {
		t.Fatal(err)
	}
	r, err := s.Payouts.Run(ctx, payout.PeriodOf(time.Now()).Prev(), "op")
	if err != nil || r.Paid != 1 || r.TotalCents != 300 {
		t.Fatalf("run: %+v, %v", r, err)
	}
	rep, err := audit.Verify(ctx, audit.Config{LogURL: s.URL() + "/log/", Key: s.VKey, DB: s.Store, HTTP: http.DefaultClient, Trusted: waitCheckpoint(t, s)})
	if err != nil {
		t.Fatalf("audit after a payout: %v", err)
	}
	for _, b := range rep.Balances {
		if b.Kind == ledger.KindPayout && b.Balance != 3*ledger.MicroPerSpice {
			t.Errorf("audited payout account balance %s", b.Balance)
		}
	}
}
