package cli

import (
	"context"
	"fmt"

	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
)

func init() {
	Register("prices", "Show the hub's unit prices and their history", pricesGet)
	Register("prices set", "Set the hub's unit prices (operators only)", pricesSet)
}

func pricesGet(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "prices", "", `
Show the unit prices in force (SP per resource-hour) and, with -history N,
the N newest changes.`)
	history := c.fs.Int("history", 0, "also show this many past changes")
	if _, rc, ok := c.parse(args, 0, 0); !ok {
		return rc
	}
	r, err := c.client().Prices(ctx, *history)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(r)
	}
	c.kv(
		[2]string{"CPU", r.Prices.CPU.String() + " per core-hour (1000 MHz)"},
		[2]string{"Memory", r.Prices.Memory.String() + " per GiB-hour"},
		[2]string{"Disk", r.Prices.Disk.String() + " per GiB-hour"},
	)
	if len(r.History) > 0 {
		fmt.Fprintln(c.env.Stdout)
		tw := c.table()
		fmt.Fprintln(tw, "Set at\tBy\tCPU/core-h\tMemory/GiB-h\tDisk/GiB-h")
		for _, h := range r.History {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.SetAt.UTC().Format("2006-01-02 15:04:05"), h.SetBy, h.CPU, h.Memory, h.Disk)
		}
		tw.Flush()
	}
	return ExitOK
}

func pricesSet(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "prices set", "", `
Put new unit prices in force, in SP per resource-hour. All three are
required, e.g. -cpu 0.04 -memory 0.01 -disk 0.0002. Jobs already admitted
keep the prices they were quoted.`)
	cpu := c.fs.String("cpu", "", "SP per core-hour (1000 MHz for one hour)")
	mem := c.fs.String("memory", "", "SP per GiB-hour of memory")
	disk := c.fs.String("disk", "", "SP per GiB-hour of disk")
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
	r, err := c.client().SetPrices(ctx, p)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(r)
	}
	fmt.Fprintf(c.env.Stdout, "Prices set: CPU %s per core-hour, memory %s per GiB-hour, disk %s per GiB-hour\n", r.Prices.CPU, r.Prices.Memory, r.Prices.Disk)
	return ExitOK
}

// parsePrice is ledger.ParseAmount, but a price may be zero.
func parsePrice(s string) (ledger.Amount, error) {
	if s == "0" || s == "0sp" || s == "0usp" {
		return 0, nil
	}
	return ledger.ParseAmount(s)
}
