package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func init() {
	Register("invoice get", "Show an invoice or statement, or save it as HTML or PDF", invoiceGet)
	Register("statement issue", "Issue a contributor's statement of earnings for a period", statementIssue)
}

func statementIssue(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "statement issue", "", `
Issue the statement of what a contributor earned in a period [-from, -to):
one line per allocation, each pointing at its ledger transfers and log
indexes, the hub's commission and the total credited. A statement is issued
once per contributor and period; asking again shows the same one. Save it
with: spice invoice get NUMBER -o statement.pdf`)
	from := c.fs.String("from", "", "the period's start: 2006-01-02 or an RFC 3339 time (UTC)")
	to := c.fs.String("to", "", "the period's end, excluded (default: now)")
	who := c.fs.String("contributor", "", "whose statement (operators only; default: yours)")
	if _, rc, ok := c.parse(args, 0, 0); !ok {
		return rc
	}
	parse := func(flag, v string, def time.Time) (time.Time, error) {
		if v == "" {
			if def.IsZero() {
				return def, fmt.Errorf("-%s is required", flag)
			}
			return def, nil
		}
		for _, layout := range []string{time.RFC3339, "2006-01-02"} {
			if t, err := time.Parse(layout, v); err == nil {
				return t, nil
			}
		}
		return time.Time{}, fmt.Errorf("-%s %q: want 2006-01-02 or an RFC 3339 time", flag, v)
	}
	f, err := parse("from", *from, time.Time{})
	if err != nil {
		return c.failf("%v", err)
	}
	t, err := parse("to", *to, time.Now().Truncate(time.Second))
	if err != nil {
		return c.failf("%v", err)
	}
	inv, err := c.client().IssueStatement(ctx, *who, f, t)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(inv)
	}
	c.kv([2]string{"Statement", fmt.Sprint(inv.Number)}, [2]string{"Contributor", inv.Party},
		[2]string{"Period", inv.From.Format(time.RFC3339) + " to " + inv.To.Format(time.RFC3339)},
		[2]string{"Allocations", fmt.Sprint(len(inv.Lines))}, [2]string{"Earned", inv.Subtotal.String()},
		[2]string{"Commission", inv.Commission.String()}, [2]string{"Credited", inv.Total.String()})
	return ExitOK
}

func invoiceGet(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "invoice get", "NUMBER", `
Show invoice (or statement) NUMBER. With -o FILE it is saved instead, as PDF
or HTML by the file's extension (.pdf, .html) unless -format says otherwise.
Renters and contributors see only their own.`)
	out := c.fs.String("o", "", "save to this file")
	format := c.fs.String("format", "", "pdf or html (default: from -o's extension)")
	pos, rc, ok := c.parse(args, 1, 1)
	if !ok {
		return rc
	}
	n, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil || n <= 0 {
		return c.failf("invoice number %q: want a positive integer", pos[0])
	}
	if *out != "" {
		f := *format
		if f == "" {
			f = strings.TrimPrefix(strings.ToLower(filepath.Ext(*out)), ".")
		}
		if f != "pdf" && f != "html" {
			return c.failf("-format: %q: want pdf or html", f)
		}
		b, err := c.client().InvoiceDocument(ctx, n, f)
		if err != nil {
			return c.fail(err)
		}
		if err := os.WriteFile(*out, b, 0o644); err != nil {
			return c.fail(err)
		}
		fmt.Fprintf(c.env.Stdout, "Saved invoice %d to %s (%d bytes)\n", n, *out, len(b))
		return ExitOK
	}
	inv, err := c.client().Invoice(ctx, n)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(inv)
	}
	c.kv([2]string{"Number", fmt.Sprint(inv.Number)}, [2]string{"Kind", string(inv.Kind)}, [2]string{"Party", inv.Party},
		[2]string{"Job", orDash(inv.Job)}, [2]string{"Issued", inv.IssuedAt.UTC().Format(time.RFC3339)})
	fmt.Fprintln(c.env.Stdout)
	tw := c.table()
	fmt.Fprintln(tw, "Allocation\tResource\tUnit price\tAmount\tLog indexes")
	for _, l := range inv.Lines {
		fmt.Fprintf(tw, "%s\t%s\t%s/%s\t%s\t%s\n", l.Allocation, l.Description(), l.Cost.UnitPrice, l.Cost.Unit, l.Cost.Amount, strings.Trim(fmt.Sprint(l.LogIndexes), "[]"))
	}
	tw.Flush()
	fmt.Fprintf(c.env.Stdout, "\nSubtotal %s, commission %s, total %s\n", inv.Subtotal, inv.Commission, inv.Total)
	return ExitOK
}
