package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spiceroute/spiceroute/hub/api"
)

func init() {
	Register("enrol", "Issue a single-use enrolment token for a contributor's machine (operators)", enrol)
	Register("machine list", "List contributors' machines with their reputation", machineList)
	Register("machine status", "Show a machine: offer, latest metrics, reputation and its reasons", machineStatus)
}

func enrol(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "enrol", "OWNER", `
Issue a single-use enrolment token for OWNER's next machine. The token is
shown once; the contributor joins the machine with
  spice agent join <hub-url> -token <token>
A token that was used or expired is refused.`)
	ttl := c.fs.String("ttl", "", "how long the token is good for (default: the hub's, 24h)")
	pos, rc, ok := c.parse(args, 1, 1)
	if !ok {
		return rc
	}
	r, err := c.client().Enrol(ctx, pos[0], *ttl)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(r)
	}
	c.kv([2]string{"Owner", r.Owner}, [2]string{"Expires", r.ExpiresAt.Format(time.RFC3339)}, [2]string{"Token", r.Token})
	return ExitOK
}

func machineList(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "machine list", "", `
List your machines (operators: every machine, or -owner's) with their
region, price floor, last heartbeat and reputation score.`)
	owner := c.fs.String("owner", "", "whose machines (operators only)")
	if _, rc, ok := c.parse(args, 0, 0); !ok {
		return rc
	}
	ms, err := c.client().Machines(ctx, *owner)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(ms)
	}
	w := c.table()
	fmt.Fprintln(w, "ID\tOwner\tNode\tRegion\tFloor SP/core-h\tLast heartbeat\tScore\tNew work")
	for _, m := range ms {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", m.ID, m.Owner, m.NodeName, m.Region, m.FloorCPU.SP(),
			since(m.LastHeartbeat), m.Reputation.Score, yesNo(m.Reputation.Eligible && m.Available))
	}
	w.Flush()
	return ExitOK
}

func machineStatus(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "machine status", "ID", `
Show one machine: its offer, what the hub last heard from it, and its
reputation score with the reason for every point it lost.`)
	pos, rc, ok := c.parse(args, 1, 1)
	if !ok {
		return rc
	}
	m, err := c.client().Machine(ctx, pos[0])
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(m)
	}
	printMachine(c, m)
	return ExitOK
}

func printMachine(c *cmd, m *api.MachineReply) {
	r := m.Reputation
	rows := [][2]string{
		{"ID", m.ID.String()}, {"Owner", m.Owner}, {"Account", m.Account.String()},
		{"Node", fmt.Sprintf("%s %s", m.NodeName, orDash(m.NodeID))},
		{"Region", m.Region}, {"Floor", m.FloorCPU.SP() + " SP/core-hour"},
		{"Host", fmt.Sprintf("%s %s/%s, %d cores, %d MHz, %d MB memory", m.Host.Hostname, m.Host.OS, m.Host.Arch, m.Host.CPUCores, m.Host.CPUMHz, m.Host.MemoryMB)},
		{"Joined", m.JoinedAt.Format(time.RFC3339)}, {"Last heartbeat", since(m.LastHeartbeat)},
		{"Available", yesNo(m.Available)}, {"Excluded", yesNo(m.Excluded)},
		{"Score", fmt.Sprintf("%d (new work: %s)", r.Score, yesNo(r.Eligible))},
		{"Uptime", fmt.Sprintf("%d.%02d%%", r.UptimeBP/100, r.UptimeBP%100)},
		{"Allocations", fmt.Sprintf("%d completed, %d failed, %d lost", r.Completed, r.Failed, r.Lost)},
	}
	if x := m.Metrics; x != nil {
		rows = append(rows, [2]string{"Metrics", fmt.Sprintf("CPU %.1f%%, load %.2f, memory %d/%d MB, disk %d/%d MB", x.CPUPercent, x.Load1, x.MemUsedMB, x.MemTotalMB, x.DiskUsedMB, x.DiskTotMB)})
	}
	if len(r.Reasons) > 0 {
		rows = append(rows, [2]string{"Reasons", strings.Join(r.Reasons, "\n")})
	}
	c.kv(rows...)
}

func since(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
