package cli_test

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/api/apitest"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/payout"
)

func TestPayouts(t *testing.T) {
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	h := apitest.New(t, api.Config{}, apitest.WithPayouts(payout.Config{RateCents: 250, Dir: t.TempDir(),
		Debtor: payout.Party{Name: "Spice Co-op", IBAN: "DE89370400440532013000", BIC: "COBADEFFXXX"}}, func() time.Time { return now }))
	op := map[string]string{"SPICE_ADDR": h.URL, "SPICE_TOKEN": h.Operator}
	alice := map[string]string{"SPICE_ADDR": h.URL, "SPICE_TOKEN": h.Token(t, "alice", auth.RoleContributor)}
	bob := map[string]string{"SPICE_ADDR": h.URL, "SPICE_TOKEN": h.Token(t, "bob", auth.RoleContributor)}
	acct := ledger.NewID()
	if res, err := h.Ledger.CreateAccounts(t.Context(), ledger.System, []ledger.Account{{ID: acct, Owner: "alice", Kind: ledger.KindContributor}}); err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	h.Issue(t, acct, 10*sp+123)

	spice(t, alice, "payout", "profile", "set", "-name", "Alice", "-iban", "DE89370400440532013001", "-threshold", "5").fails(t, 1, "invalid_iban", "check digits")
	spice(t, alice, "payout", "profile", "set", "-name", "Alice", "-iban", "DE89370400440532013000", "-threshold", "0.5").fails(t, 1, "invalid_threshold")
	spice(t, alice, "payout", "profile", "set", "-name", "Alice", "-iban", "DE89370400440532013000", "-threshold", "lots").fails(t, 1, "-threshold")
	spice(t, alice, "payout", "profile", "set", "-name", "Alice", "-iban", "DE89370400440532013000", "-bic", "XX", "-threshold", "5").fails(t, 1, "invalid_bic")
	spice(t, alice, "payout", "profile", "set", "-iban", "DE89370400440532013000").fails(t, 2, "required")
	spice(t, alice, "payout", "profile").fails(t, 1, "payout_profile_not_found")
	out := spice(t, alice, "payout", "profile", "set", "-name", "Alice Müller", "-iban", "de89 3704 0044 0532 0130 00", "-threshold", "5").ok(t)
	row(t, out, "IBAN", "DE89 3704 0044 0532 0130 00")
	row(t, spice(t, alice, "payout", "profile").ok(t), "Threshold", "5.000000 SP")
	spice(t, bob, "payout", "profile", "-owner", "alice").fails(t, 1, "payout_profile_not_found")
	spice(t, bob, "payout", "list", "-owner", "alice").fails(t, 1, "not_found")

	spice(t, alice, "payout", "run", "-period", "2026-11").fails(t, 1, "forbidden")
	spice(t, op, "payout", "run", "-period", "2026-13").fails(t, 1, "invalid_period")
	spice(t, op, "payout", "run", "-period", "2027-01").fails(t, 1, "invalid_period", "has not begun")
	out = spice(t, op, "payout", "run", "-period", "2026-11").ok(t)
	row(t, out, "Total", "10.000000 SP = 25.00 EUR")
	contains(t, out, "alice", "paid", "25.00", "rounded down")
	row(t, spice(t, op, "payout", "run", "-period", "2026-11").ok(t), "Paid", "1") // the same run, nothing paid twice
	contains(t, spice(t, op, "payout", "runs").ok(t), "2026-11", "complete")
	contains(t, spice(t, alice, "payout", "list").ok(t), "2026-11", "paid", "10.000000 SP", "25.00")

	dir := t.TempDir()
	spice(t, alice, "payout", "batch", "-period", "2026-11", "-o", filepath.Join(dir, "x.csv")).fails(t, 1, "forbidden")
	contains(t, spice(t, op, "payout", "batch", "-period", "2026-11", "-o", filepath.Join(dir, "b.xml")).ok(t), "Saved the xml batch")
	x, _ := os.ReadFile(filepath.Join(dir, "b.xml"))
	contains(t, string(x), payout.Pain001Namespace, "<InstdAmt Ccy=\"EUR\">25.00</InstdAmt>", "<Nm>Alice Müller</Nm>", "<ChrgBr>SLEV</ChrgBr>")
	spice(t, op, "payout", "batch", "-period", "2026-11", "-format", "csv", "-o", filepath.Join(dir, "b.csv")).ok(t)
	data, _ := os.ReadFile(filepath.Join(dir, "b.csv"))
	rows, err := csv.NewReader(strings.NewReader(string(data))).ReadAll()
	if err != nil || len(rows) != 2 || rows[1][0] != "Alice Müller" || rows[1][3] != "25.00" || rows[1][4] != "10000000" {
		t.Fatalf("batch CSV %q, %v", rows, err)
	}
	spice(t, op, "payout", "batch", "-period", "2026-11", "-format", "pdf").fails(t, 1, "csv or xml")

	contains(t, spice(t, op, "payout", "withhold", "-owner", "bob", "-reason", "spot check failed").ok(t), "every period", "spot check failed")
	contains(t, spice(t, op, "payout", "withholds").ok(t), "bob", "spot check failed")
	contains(t, spice(t, op, "payout", "release", "1").ok(t), "Released withhold 1")
	spice(t, op, "payout", "release", "1").fails(t, 1, "withhold_not_found")
	h.CheckBooks(t)
}
