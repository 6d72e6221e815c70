package cli

import (
	"context"
	"fmt"

	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/hub/jobs"
	"github.com/spiceroute/spiceroute/hub/market"
)

func init() {
	Register("job quote", "Show what a job would cost, without running it", jobQuote)
}

func jobQuote(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "job quote", "FILE", `
Ask the hub what the job in FILE would cost if you ran it now, as the
renter of your token: FILE is what "spice job run" reads (an HCL2 jobspec,
or Nomad's JSON job when it ends in .json; "-" reads standard input).

The hub checks the job against its admission policy and quotes it at the
prices in force (the prices of the region the job pins with a constraint on
${meta.spiceroute_region}, else the hub-wide ones) for its maximum runtime
(meta spiceroute_max_runtime), and says whether your account covers the
quote. Nothing is held and Nomad never sees the job. Prices move with
supply and demand: the job is held at the prices in force when you run it.

Exit codes: 0 the quote (covered by your account or not); 1 the hub rejected
the job (the message says which rule, task or amount) or another error;
2 wrong usage.`)
	pos, rc, ok := c.parse(args, 1, 1)
	if !ok {
		return rc
	}
	src, err := readJobFile(pos[0], env.Stdin)
	if err != nil {
		return c.fail(err)
	}
	cl := c.client()
	var e *jobs.Estimate
	if isJSONJob(pos[0], src) {
		var j *nomadapi.Job
		if j, err = decodeJobFile(pos[0], src); err != nil {
			return c.fail(err)
		}
		e, err = cl.QuoteJob(ctx, j)
	} else {
		e, err = cl.QuoteJobHCL(ctx, string(src))
	}
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(e)
	}
	q := e.Quote
	covered := "yes"
	if !e.Covered {
		covered = "no: " + e.Note
	}
	account := "-"
	if e.Account != nil {
		account = fmt.Sprintf("%s (%s available)", e.Account, e.Available)
	}
	c.kv(
		[2]string{"Job", e.JobID},
		[2]string{"Region", regionName(q.Region)},
		[2]string{"Resources", fmt.Sprintf("%d MHz CPU, %d MB memory, %d MB disk (every instance)", q.Resources.CPUMHz, q.Resources.MemoryMB, q.Resources.DiskMB)},
		[2]string{"Max runtime", q.MaxRuntime.String()},
		[2]string{"Prices", priceText(q.Prices)},
		[2]string{"Quote", fmt.Sprintf("up to %s (held when the job runs; you pay for what runs)", q.Max)},
		[2]string{"Account", account},
		[2]string{"Covered", covered},
	)
	return ExitOK
}

func priceText(p market.Prices) string {
	return fmt.Sprintf("%s per core-hour, %s per GiB-hour of memory, %s per GiB-hour of disk", p.CPU, p.Memory, p.Disk)
}
