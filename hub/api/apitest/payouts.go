package apitest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/payout"
)

// PayoutHub is the hub name payout transfer IDs are derived from.
const PayoutHub = "test hub"

// WithPayouts serves /api/payouts with a payout service (h.Payouts) over
// the hub's store and ledger, paying into a new payout account
// (h.PayoutAccount, also h.Info.SystemAccounts["payout"]). now is its
// clock (nil: time.Now).
func WithPayouts(cfg payout.Config, now func() time.Time) Option {
	return func(tb testing.TB, h *Hub, deps *api.Deps) {
		tb.Helper()
		acct := ledger.NewID()
		res, err := h.Ledger.CreateAccounts(context.Background(), ledger.System, []ledger.Account{{ID: acct, Owner: "hub", Kind: ledger.KindPayout}})
		if err != nil || res[0].Err != nil {
			tb.Fatalf("apitest: create payout account: %v %v", err, res[0].Err)
		}
		logger := slog.New(slog.NewTextHandler(io.Discard, nil))
		if os.Getenv("SPICE_TEST_LOG") != "" {
			logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
		svc, err := payout.New(cfg, payout.Deps{Hub: PayoutHub, Ledger: h.Ledger, Store: h.Store, Account: acct, Now: now, Logger: logger})
		if err != nil {
			tb.Fatalf("apitest: %v", err)
		}
		h.Payouts, h.PayoutAccount = svc, acct
		h.Info.SystemAccounts["payout"] = acct // the same map as the API's HubInfo
		deps.Payouts = svc
	}
}
