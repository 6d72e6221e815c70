package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
)

func init() {
	Register("prices", "Show the hub's unit prices and their history", pricesGet)
	Register("prices set", "Set the hub's unit prices (operators only)", pricesSet)
	Register("prices history", "Show how prices moved, and the utilization that moved them", pricesHistory)
}

func pricesGet(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "prices", "", `
Show the unit prices in force (SP per resource-hour), hub-wide or in a
-region, and, with -history N, the N newest changes. Prices move with
supply and demand: see spice prices history.`)
	history := c.fs.Int("history", 0, "also show this many past changes")
	region := c.fs.String("region", "", "a contributor region, e.g. eu-west (default: the hub-wide prices)")
	if _, rc, ok := c.parse(args, 0, 0); !ok {
		return rc
	}
	r, err := c.client().PricesIn(ctx, *region, *history)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(r)
	}
	c.kv(
		[2]string{"Region", regionName(r.Region)},
		[2]string{"CPU", r.Prices.CPU.String() + " per core-hour (1000 MHz)"},
		[2]string{"Memory", r.Prices.Memory.String() + " per GiB-hour"},
		[2]string{"Disk", r.Prices.Disk.String() + " per GiB-hour"},
	)
	if len(r.History) > 0 {
		fmt.Fprintln(c.env.Stdout)
		c.priceTable(r.History)
	}
	return ExitOK
}

func pricesHistory(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "prices history", "", `
Show how unit prices moved, newest first: when, in which region ("hub" is
the hub-wide prices), the prices (SP per resource-hour), who set them, and
for the market's moves the utilization (demand / capacity) of CPU, memory
and disk that moved them. An operator's prices are the base the market
moves from: prices rise while utilization is above the hub's target and
fall back towards the base when it is below.

Without -region, every region's changes.`)
	region := c.fs.String("region", "", `one region, e.g. eu-west; "" or "hub" for the hub-wide prices (default: every region)`)
	limit := c.fs.Int("limit", 0, "show at most this many (default: the hub's, 50; at most 1000)")
	if _, rc, ok := c.parse(args, 0, 0); !ok {
		return rc
	}
	if *limit < 0 {
		return c.failf("-limit: %d: want a positive number", *limit)
	}
	r := market.AllRegions
	c.fs.Visit(func(f *flag.Flag) {
		if f.Name == "region" {
			r = *region
		}
	})
	if r == "hub" {
		r = ""
	}
	h, err := c.client().PriceHistory(ctx, r, *limit)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(h)
	}
	if len(h) == 0 {
		fmt.Fprintln(c.env.Stdout, "No price changes yet: the prices in force are the hub's defaults (spice prices).")
		return ExitOK
	}
	c.priceTable(h)
	return ExitOK
}

// priceTable prints price changes, with the utilization of the market's.
func (c *cmd) priceTable(h []market.PriceChange) {
	tw := c.table()
	fmt.Fprintln(tw, "Set at\tRegion\tBy\tCPU/core-h\tMemory/GiB-h\tDisk/GiB-h\tUtilization CPU/mem/disk")
	for _, x := range h {
		util := "-"
		if l := x.Load; l != nil {
			util = fmt.Sprintf("%s/%s/%s", percent(l.Utilization.CPU), percent(l.Utilization.Memory), percent(l.Utilization.Disk))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.SetAt.UTC().Format("2006-01-02 15:04:05"), regionName(x.Region), x.SetBy, x.CPU, x.Memory, x.Disk, util)
	}
	tw.Flush()
}

// regionName shows the hub-wide region "" as "hub".
func regionName(r string) string {
	if r == "" {
		return "hub"
	}
	return r
}

// percent shows basis points as a percentage, e.g. 7250 as "72.5%".
func percent(bp int64) string {
	s := fmt.Sprintf("%d.%d", bp/100, bp%100/10)
	return strings.TrimSuffix(s, ".0") + "%"
}

func pricesSet(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "prices set", "", `
Put new unit prices in force, hub-wide or in a -region, in SP per
resource-hour. All three are required, e.g. -cpu 0.04 -memory 0.01 -disk
0.0002. Jobs already admitted keep the prices they were quoted. The prices
are the base the market moves from: they rise with demand, up to the hub's
ceiling, and fall back to them when demand ends.`)
	cpu := c.fs.String("cpu", "", "SP per core-hour (1000 MHz for one hour)")
	mem := c.fs.String("memory", "", "SP per GiB-hour of memory")
	disk := c.fs.String("disk", "", "SP per GiB-hour of disk")
	region := c.fs.String("region", "", "a contributor region, e.g. eu-west (default: the whole hub)")
	if _, rc, ok := c.parse(args, 0, 0); !ok {
		return rc
	}
	if *cpu == "" || *mem == "" || *disk == "" {
		return c.usageError("-cpu, -memory and -disk are all required")
	}
	var p market.Prices
	for _, f := range []struct {
		flag, v string
		dst     *ledger.Amount
	}{{"-cpu", *cpu, &p.CPU}, {"-memory", *mem, &p.Memory}, {"-disk", *disk, &p.Disk}} {
		a, err := parsePrice(f.v)
		if err != nil {
			return c.failf("%s: %v", f.flag, err)
		}
		*f.dst = a
	}
	r, err := c.client().SetPricesIn(ctx, *region, p)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(r)
	}
	fmt.Fprintf(c.env.Stdout, "Prices set in %s: CPU %s per core-hour, memory %s per GiB-hour, disk %s per GiB-hour\n", regionName(r.Region), r.Prices.CPU, r.Prices.Memory, r.Prices.Disk)
	return ExitOK
}

// parsePrice is ledger.ParseAmount, but a price may be zero.
func parsePrice(s string) (ledger.Amount, error) {
	if s == "0" || s == "0sp" || s == "0usp" {
		return 0, nil
	}
	return ledger.ParseAmount(s)
}
