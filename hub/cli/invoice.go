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
