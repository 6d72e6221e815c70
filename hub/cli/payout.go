package cli

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/payout"
)

func init() {
	Register("payout profile", "Show your payout profile: where and from how much you are paid", payoutProfile)
	Register("payout profile set", "Set your payout profile: legal name, IBAN, BIC, threshold (contributors)", payoutProfileSet)
	Register("payout list", "List your payouts, newest first", payoutList)
	Register("payout run", "Pay a period's payouts, once per period (operators only)", payoutRun)
	Register("payout runs", "List payout runs (operators only)", payoutRuns)
	Register("payout batch", "Save a payout run's batch file: CSV or ISO 20022 pain.001 (operators only)", payoutBatch)
	Register("payout withhold", "Withhold a contributor's payouts (operators only)", payoutWithhold)
	Register("payout release", "Release a withhold (operators only)", payoutRelease)
	Register("payout withholds", "List withholds (operators only)", payoutWithholds)
}

func payoutProfile(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "payout profile", "", `
Show your payout profile: the account holder and IBAN you are paid to, and
the threshold below which you are not paid. Operators may name -owner.`)
	owner := c.fs.String("owner", "", "whose profile (operators only; default: yours)")
	if _, rc, ok := c.parse(args, 0, 0); !ok {
		return rc
	}
	p, err := c.client().PayoutProfile(ctx, *owner)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(p)
	}
	c.printProfile(p)
	return ExitOK
}

func (c *cmd) printProfile(p payout.Profile) {
	c.kv([2]string{"Owner", p.Owner}, [2]string{"Legal name", p.LegalName}, [2]string{"IBAN", p.IBAN.Printed()},
		[2]string{"BIC", orDash(string(p.BIC))}, [2]string{"Threshold", p.Threshold.String()},
		[2]string{"Updated", p.UpdatedAt.UTC().Format("2006-01-02 15:04:05")})
}

func payoutProfileSet(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "payout profile set", "", `
Set where you are paid: the account holder's legal name as your bank knows
it, the IBAN, optionally the BIC, and the threshold in SP (at least 1 SP):
a payout run pays you all your available Spice once it reaches the
threshold. Example:

  spice payout profile set -name "Alice Müller" -iban "DE89 3704 0044 0532 0130 00" -threshold 25`)
	name := c.fs.String("name", "", "the account holder's legal name")
	iban := c.fs.String("iban", "", "the IBAN to pay (spaces allowed)")
	bic := c.fs.String("bic", "", "the bank's BIC (optional)")
	threshold := c.fs.String("threshold", "", "pay from this many SP on (at least 1)")
	if _, rc, ok := c.parse(args, 0, 0); !ok {
		return rc
	}
	if *name == "" || *iban == "" || *threshold == "" {
		return c.usageError("-name, -iban and -threshold are required")
	}
	t, err := ledger.ParseAmount(*threshold)
	if err != nil {
		return c.failf("-threshold: %v", err)
	}
	p, err := c.client().SetPayoutProfile(ctx, payout.ProfileRequest{LegalName: *name, IBAN: *iban, BIC: *bic, Threshold: t})
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(p)
	}
	c.printProfile(p)
	return ExitOK
}

func payoutList(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "payout list", "", `
List your payouts, newest first: the period, the Spice paid and the euros
it became, the state (paid, withheld, failed) and why. Operators may name
-owner.`)
	owner := c.fs.String("owner", "", "whose payouts (operators only; default: yours)")
	limit := c.fs.Int("limit", 0, "at most this many (default: the hub's, 100)")
	if _, rc, ok := c.parse(args, 0, 0); !ok {
		return rc
	}
	ps, err := c.client().Payouts(ctx, *owner, *limit)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(ps)
	}
	c.payoutTable(ps, false)
	return ExitOK
}

// payoutTable prints payouts, with their owners when owners is set.
func (c *cmd) payoutTable(ps []payout.Payout, owners bool) {
	tw := c.table()
	if owners {
		fmt.Fprint(tw, "Owner\t")
	}
	fmt.Fprintln(tw, "Period\tBatch\tState\tSpice\tEUR\tIBAN\tEnd-to-end ID\tDetail")
	for _, p := range ps {
		if owners {
			fmt.Fprintf(tw, "%s\t", p.Owner)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Period, p.Batch, p.State, p.Amount, payout.EUR(p.Cents), p.IBAN.Printed(), orDash(p.EndToEndID), orDash(p.Detail))
	}
	tw.Flush()
}

func payoutRun(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "payout run", "", `
Pay the payouts of -period (a month, 2026-11): every contributor whose
available Spice is at least its threshold and who is not withheld is paid
all of it (less what is worth under a cent), through the ledger and into
the batch files. A period is paid once: running it again shows the same
run, and a run that stopped midway completes with the same transfers.`)
	period := c.fs.String("period", "", "the month to pay, e.g. 2026-11")
	if _, rc, ok := c.parse(args, 0, 0); !ok {
		return rc
	}
	if *period == "" {
		return c.usageError("-period is required")
	}
	if _, err := payout.ParsePeriod(*period); err != nil {
		return c.fail(err)
	}
	r, err := c.client().RunPayouts(ctx, *period)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(r)
	}
	c.printRun(r)
	return ExitOK
}

func (c *cmd) printRun(r *payout.Run) {
	c.kv([2]string{"Period", r.Period.String()}, [2]string{"Batch", strconv.FormatInt(r.Batch, 10)}, [2]string{"State", string(r.State)},
		[2]string{"Rate", payout.EUR(r.RateCents) + " EUR per SP"}, [2]string{"Paid", strconv.Itoa(r.Paid)},
		[2]string{"Total", r.TotalUSP.String() + " = " + payout.EUR(r.TotalCents) + " EUR"},
		[2]string{"Started by", r.StartedBy}, [2]string{"Files", orDash(strings.Join(r.Files, " "))})
	if len(r.Payouts) > 0 {
		fmt.Fprintln(c.env.Stdout)
		c.payoutTable(r.Payouts, true)
	}
}

func payoutRuns(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "payout runs", "[PERIOD]", `
List payout runs, newest first, or show the run of PERIOD with its payouts.`)
	pos, rc, ok := c.parse(args, 0, 1)
	if !ok {
		return rc
	}
	if len(pos) == 1 {
		r, err := c.client().PayoutRun(ctx, pos[0])
		if err != nil {
			return c.fail(err)
		}
		if c.json {
			return c.printJSON(r)
		}
		c.printRun(r)
		return ExitOK
	}
	rs, err := c.client().PayoutRuns(ctx, 0)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(rs)
	}
	tw := c.table()
	fmt.Fprintln(tw, "Period\tBatch\tState\tPaid\tSpice\tEUR\tStarted by\tCompleted")
	for _, r := range rs {
		done := "-"
		if r.CompletedAt != nil {
			done = r.CompletedAt.UTC().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\n", r.Period, r.Batch, r.State, r.Paid, r.TotalUSP, payout.EUR(r.TotalCents), r.StartedBy, done)
	}
	tw.Flush()
	return ExitOK
}

func payoutBatch(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "payout batch", "", `
Save the batch file of -period's complete run for the hub's bank: CSV
(payee, IBAN, BIC, EUR, µSP, period, ledger transfer IDs, end-to-end ID) or
an ISO 20022 pain.001.001.10 SEPA credit transfer file (-format xml). The
bytes are those of the files the hub wrote. Without -o it is printed.`)
	period := c.fs.String("period", "", "the run's month, e.g. 2026-11")
	format := c.fs.String("format", "", "csv or xml (default: from -o's extension, else csv)")
	out := c.fs.String("o", "", "save to this file")
	if _, rc, ok := c.parse(args, 0, 0); !ok {
		return rc
	}
	if *period == "" {
		return c.usageError("-period is required")
	}
	if _, err := payout.ParsePeriod(*period); err != nil {
		return c.fail(err)
	}
	f := *format
	if f == "" {
		f = "csv"
		if strings.HasSuffix(strings.ToLower(*out), ".xml") {
			f = "xml"
		}
	}
	if f != "csv" && f != "xml" {
		return c.failf("-format: %q: want csv or xml", f)
	}
	b, err := c.client().PayoutBatch(ctx, *period, f)
	if err != nil {
		return c.fail(err)
	}
	if *out == "" {
		c.env.Stdout.Write(b)
		return ExitOK
	}
	if err := os.WriteFile(*out, b, 0o640); err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(c.env.Stdout, "Saved the %s batch of %s to %s (%d bytes)\n", f, *period, *out, len(b))
	return ExitOK
}

func payoutWithhold(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "payout withhold", "", `
Withhold -owner's payouts in -period, or, without -period, in every period
until released (spice payout release ID). Runs record the reason on the
contributor's payout, which the contributor sees.`)
	owner := c.fs.String("owner", "", "the contributor")
	period := c.fs.String("period", "", "the month, e.g. 2026-11 (default: every period until released)")
	reason := c.fs.String("reason", "", "why (the contributor sees it)")
	if _, rc, ok := c.parse(args, 0, 0); !ok {
		return rc
	}
	if *owner == "" || *reason == "" {
		return c.usageError("-owner and -reason are required")
	}
	w, err := c.client().Withhold(ctx, *owner, *period, *reason)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(w)
	}
	fmt.Fprintf(c.env.Stdout, "Withhold %d: %s's payouts in %s are withheld: %s\n", w.ID, w.Owner, periodOrAll(w.Period), w.Reason)
	return ExitOK
}

func periodOrAll(p payout.Period) string {
	if p.IsZero() {
		return "every period"
	}
	return p.String()
}

func payoutRelease(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "payout release", "ID", `
Release withhold ID: the contributor is paid again from the next run on.`)
	pos, rc, ok := c.parse(args, 1, 1)
	if !ok {
		return rc
	}
	id, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil || id <= 0 {
		return c.failf("withhold %q: want a positive integer", pos[0])
	}
	w, err := c.client().ReleaseWithhold(ctx, id)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(w)
	}
	fmt.Fprintf(c.env.Stdout, "Released withhold %d of %s (%s)\n", w.ID, w.Owner, periodOrAll(w.Period))
	return ExitOK
}

func payoutWithholds(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "payout withholds", "", `
List the active withholds, newest first (-all: released ones too).`)
	all := c.fs.Bool("all", false, "include released withholds")
	if _, rc, ok := c.parse(args, 0, 0); !ok {
		return rc
	}
	ws, err := c.client().Withholds(ctx, *all)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(ws)
	}
	tw := c.table()
	fmt.Fprintln(tw, "ID\tOwner\tPeriod\tReason\tBy\tReleased")
	for _, w := range ws {
		rel := "-"
		if w.ReleasedAt != nil {
			rel = w.ReleasedAt.UTC().Format("2006-01-02 15:04:05") + " by " + w.ReleasedBy
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", w.ID, w.Owner, periodOrAll(w.Period), w.Reason, w.CreatedBy, rel)
	}
	tw.Flush()
	return ExitOK
}
