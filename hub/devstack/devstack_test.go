package devstack_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/hub/client"
	"github.com/spiceroute/spiceroute/hub/devstack"
	"github.com/spiceroute/spiceroute/hub/ledger"
)

// TestDevStack is `make dev` in process: an ephemeral PostgreSQL, a hub and
// the demo principals; the printed tokens work, alice has her 1000 SP, a
// transfer goes through, and Close leaves nothing behind.
func TestDevStack(t *testing.T) {
	// PostgreSQL runs as an unprivileged user, which must reach the data
	// directory: t.TempDir's parents are private to root.
	dir, err := os.MkdirTemp("", "devstack-test-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx := context.Background()
	st, err := devstack.Start(ctx, devstack.Config{Listen: "127.0.0.1:0", DataDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- st.Run(runCtx) }()
	url := st.Hub.URL()

	alice := client.New(url, st.RenterToken)
	who, err := alice.Whoami(ctx)
	if err != nil || who.Name != "alice" {
		t.Fatalf("whoami with the printed renter token: %+v, %v", who, err)
	}
	acct, err := alice.Account(ctx, st.RenterAccount)
	if err != nil || acct.Balance() != devstack.DemoBalance {
		t.Fatalf("alice's account: %+v, %v; want %s", acct, err, devstack.DemoBalance)
	}
	r, err := alice.CreateTransfer(ctx, ledger.Transfer{ID: ledger.NewID(), DebitAccountID: st.RenterAccount, CreditAccountID: st.ContribAccount, Amount: 2_500_000})
	if err != nil || r.Transfer.LogIndex == 0 {
		t.Fatalf("demo transfer: %+v, %v", r, err)
	}
	carol := client.New(url, st.ContributorTok)
	if c, err := carol.Account(ctx, st.ContribAccount); err != nil || c.Balance() != 2_500_000 {
		t.Fatalf("carol's account: %+v, %v", c, err)
	}
	if _, err := client.New(url, st.OperatorToken).Whoami(ctx); err != nil {
		t.Fatalf("operator token: %v", err)
	}

	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// Everything stopped: the hub no longer answers and PostgreSQL is down
	// (its postmaster.pid is gone from the kept data directory).
	hc := client.New(url, st.RenterToken, client.WithTimeout(2*time.Second))
	if err := hc.Health(ctx); err == nil {
		t.Fatal("the hub still answers after Close")
	}
	if _, err := os.Stat(dir + "/postgres/postmaster.pid"); !os.IsNotExist(err) {
		t.Fatalf("PostgreSQL still running after Close (postmaster.pid: %v)", err)
	}

	// spice dev -data DIR again: the same database, ledger and log, and
	// seeding is idempotent (alice is not credited twice).
	again, err := devstack.Start(ctx, devstack.Config{Listen: "127.0.0.1:0", DataDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("second start on the same data directory: %v", err)
	}
	defer again.Close()
	a, err := again.Hub.Store.Account(ctx, again.RenterAccount)
	if err != nil || a.Balance() != devstack.DemoBalance-2_500_000 {
		t.Fatalf("alice after restart: %+v, %v; want %s", a, err, devstack.DemoBalance-2_500_000)
	}
}
