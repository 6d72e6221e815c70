package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/hub/client"
	"github.com/spiceroute/spiceroute/hub/jobs"
	"github.com/spiceroute/spiceroute/hub/market"
)

func init() {
	Register("job run", "Run a job (HCL2 jobspec or Nomad JSON job) and follow it until it runs", jobRun)
	Register("job status", "Show a job: allocations, why it is not placed, quote, charges, invoice", jobStatus)
	Register("job list", "List your jobs, newest first", jobList)
	Register("job stop", "Stop a job; it is settled and invoiced once it has stopped", jobStop)
	Register("job logs", "Print what a task of a job wrote", jobLogs)
}

// ExitNotPlaced is the exit code of `spice job run` when Nomad placed no
// allocation of the job within -wait. The job stays queued: it runs when a
// node that fits joins, or until `spice job stop`.
const ExitNotPlaced = 3

// followInterval is how often `spice job run` reads the job's status.
const followInterval = time.Second

func jobRun(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "job run", "FILE", `
Submit the job in FILE to the hub, as the renter of your token: an HCL2
jobspec (what "nomad job run" reads), or Nomad's JSON job when FILE ends in
.json (the object "nomad job inspect" prints, with or without its "Job"
wrapper). FILE "-" reads standard input; JSON there starts with "{".

The hub checks the job against its admission policy, quotes it at the
current prices for its maximum runtime (meta spiceroute_max_runtime) and
holds the quote on your account before Nomad sees it. You pay for what runs;
the rest of the hold is returned when the job ends.

Unless -detach is given, the job is then followed every second until its
allocations are running or finished, and if Nomad cannot place it, why.

Exit codes: 0 the job is running or finished; 1 the hub rejected the job
(the message says which rule, task or amount), an allocation failed, or
another error; 2 wrong usage; 3 no allocation was placed within -wait (the
job stays queued: stop it with "spice job stop").`)
	detach := c.fs.Bool("detach", false, "return once the job is admitted; do not follow it")
	wait := c.fs.Duration("wait", 30*time.Second, "how long to wait for Nomad to place the job")
	pos, rc, ok := c.parse(args, 1, 1)
	if !ok {
		return rc
	}
	if *wait <= 0 {
		return c.failf("-wait: %s: want a positive duration", *wait)
	}
	src, err := readJobFile(pos[0], env.Stdin)
	if err != nil {
		return c.fail(err)
	}
	cl := c.client()
	var adm *jobs.Admission
	if isJSONJob(pos[0], src) {
		var j *nomadapi.Job
		if j, err = decodeJobFile(pos[0], src); err != nil {
			return c.fail(err)
		}
		adm, err = cl.RunJob(ctx, j)
	} else {
		adm, err = cl.RunJobHCL(ctx, string(src))
	}
	if err != nil {
		return c.fail(err)
	}
	progress := c.env.Stdout
	if c.json {
		if rc := c.printJSON(adm); rc != ExitOK {
			return rc
		}
		progress = c.env.Stderr
	} else {
		fmt.Fprintf(progress, "Job %q admitted\n\n", adm.JobID)
		c.kv(
			[2]string{"Namespace", adm.Namespace},
			[2]string{"Quote", quoteText(adm.Quote)},
			[2]string{"Hold", fmt.Sprintf("%s reserved on your account until the job ends (hold %s)", adm.Quote.Max, adm.Hold)},
			[2]string{"Evaluation", orDash(adm.EvalID)},
		)
		if adm.Warnings != "" {
			fmt.Fprintf(progress, "\nNomad's warnings:\n%s\n", block(adm.Warnings))
		}
	}
	if *detach {
		return ExitOK
	}
	return c.follow(ctx, cl, progress, adm.JobID, *wait)
}

// follow polls the job's status until an allocation runs or all have
// finished, printing every change; see jobRun for the exit codes.
func (c *cmd) follow(ctx context.Context, cl *client.Client, w io.Writer, id string, wait time.Duration) int {
	fmt.Fprintln(w)
	deadline := time.Now().Add(wait)
	var last, lastUnplaced string
	t := time.NewTicker(followInterval)
	defer t.Stop()
	for {
		st, err := cl.JobStatus(ctx, id)
		if err != nil {
			return c.failf("following job %q: %w (the job may be running: see spice job status %s)", id, err, id)
		}
		if s := progressLine(st); s != last {
			fmt.Fprintf(w, "==> %s %s\n", time.Now().Format("15:04:05"), s)
			last = s
		}
		if st.Unplaced != "" && st.Unplaced != lastUnplaced {
			fmt.Fprintf(w, "Nomad cannot place the job:\n%s\n", block(st.Unplaced))
		}
		lastUnplaced = st.Unplaced
		running, finished, failed := 0, 0, 0
		for _, a := range st.Allocations {
			switch a.ClientStatus {
			case "running":
				running++
			case "complete":
				finished++
			case "failed", "lost":
				finished++
				failed++
			}
		}
		n := len(st.Allocations)
		switch {
		case running > 0:
			fmt.Fprintf(w, "Job %q is running. See it with: spice job status %s; its output with: spice job logs %s\n", id, id, id)
			return ExitOK
		case n > 0 && finished == n && failed > 0:
			return c.failf("job %q: %d of %d allocations failed; see spice job status %s and spice job logs %s -stderr", id, failed, n, id, id)
		case n > 0 && finished == n:
			fmt.Fprintf(w, "Job %q finished. See its charges with: spice job status %s\n", id, id)
			return ExitOK
		case n == 0 && (st.Stopped || st.Status == "dead"):
			return c.failf("job %q ended before Nomad placed it", id)
		case n == 0 && time.Now().After(deadline):
			why := ""
			if st.Unplaced != "" {
				why = ":\n" + block(st.Unplaced)
			}
			fmt.Fprintf(c.env.Stderr, "Error: job %q is still not placed after %s%s\nIt stays queued until a node fits; stop it with: spice job stop %s\n", id, wait, why, id)
			return ExitNotPlaced
		}
		select {
		case <-ctx.Done():
			return c.failf("stopped following job %q: %w (the job goes on: spice job status %s)", id, ctx.Err(), id)
		case <-t.C:
		}
	}
}

// progressLine is one line of the job's state: Nomad's status and each
// allocation's with its tasks.
func progressLine(st *jobs.Status) string {
	var b strings.Builder
	fmt.Fprintf(&b, "job %s", orDash(st.Status))
	if len(st.Allocations) == 0 {
		b.WriteString("; no allocation placed yet")
	}
	for _, a := range st.Allocations {
		fmt.Fprintf(&b, "; allocation %s %s", shortID(a.ID), a.ClientStatus)
		var ts []string
		for _, t := range a.Tasks {
			ts = append(ts, fmt.Sprintf("task %s %s", t.Name, t.State))
		}
		if len(ts) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(ts, ", "))
		}
	}
	return b.String()
}

// readJobFile reads FILE, or standard input for "-".
func readJobFile(name string, stdin io.Reader) ([]byte, error) {
	var b []byte
	var err error
	if name == "-" {
		if stdin == nil {
			return nil, errors.New("no standard input to read the job from")
		}
		b, err = io.ReadAll(stdin)
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the job: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("%s: empty; want an HCL2 jobspec or a Nomad JSON job", name)
	}
	return b, nil
}

// isJSONJob tells JSON jobs from HCL: by the extension, or for standard
// input by the first character (an HCL jobspec never starts with "{").
func isJSONJob(name string, src []byte) bool {
	if name == "-" {
		return bytes.HasPrefix(bytes.TrimSpace(src), []byte("{"))
	}
	return strings.EqualFold(filepath.Ext(name), ".json")
}

// decodeJobFile decodes a Nomad JSON job strictly, unwrapping the {"Job":
// {...}} that `nomad job inspect` and `nomad job run -output` print.
func decodeJobFile(name string, src []byte) (*nomadapi.Job, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(src, &top); err != nil {
		return nil, fmt.Errorf("%s: not a JSON object: %w", name, err)
	}
	if inner, ok := top["Job"]; ok && len(top) == 1 {
		src = inner
	}
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.DisallowUnknownFields()
	var j nomadapi.Job
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("%s: not a Nomad job: %w", name, err)
	}
	return &j, nil
}

func jobStatus(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "job status", "ID", `
Show your job ID: Nomad's status, its allocations and their tasks, why Nomad
cannot place it if it cannot, and what the hub charges for it: the quote
held when it was admitted, what was charged so far and the hub's commission
in it, the state of the hold, and the invoice number once the job has ended
and been settled.`)
	pos, rc, ok := c.parse(args, 1, 1)
	if !ok {
		return rc
	}
	st, err := c.client().JobStatus(ctx, pos[0])
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(st)
	}
	rows := [][2]string{{"ID", st.JobID}, {"Namespace", st.Namespace}, {"Status", nomadStatus(st)}}
	if r := st.Admission; r != nil {
		charged := r.Charged.String()
		if r.Open() {
			charged += " so far"
		}
		invoice := "not yet issued"
		if r.Invoice > 0 {
			invoice = fmt.Sprintf("%d (spice invoice get %d)", r.Invoice, r.Invoice)
		} else if r.State == jobs.Released || r.State == jobs.Failed {
			invoice = "-"
		}
		rows = append(rows,
			[2]string{"Admission", string(r.State)},
			[2]string{"Quote", quoteText(r.Quote)},
			[2]string{"Charged", charged},
			[2]string{"Commission", r.Commission.String() + " (the hub's part of the charge)"},
			[2]string{"Hold", holdText(r)},
			[2]string{"Invoice", invoice},
		)
		if r.Detail != "" {
			rows = append(rows, [2]string{"Detail", r.Detail})
		}
	}
	c.kv(rows...)
	if st.Unplaced != "" {
		fmt.Fprintf(c.env.Stdout, "\nWhy not placed:\n%s\n", block(st.Unplaced))
	}
	if len(st.Allocations) > 0 {
		fmt.Fprintf(c.env.Stdout, "\nAllocations\n")
		tw := c.table()
		fmt.Fprintln(tw, "ID\tNode\tStatus\tDesired\tTask\tState\tStarted\tFinished")
		for _, a := range st.Allocations {
			if len(a.Tasks) == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t-\t-\t-\t-\n", a.ID, orDash(a.Node), a.ClientStatus, a.DesiredStatus)
			}
			for _, t := range a.Tasks {
				state := t.State
				if t.Failed {
					state += " (failed)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, orDash(a.Node), a.ClientStatus, a.DesiredStatus, t.Name, state, clock(t.StartedAt), clock(t.FinishedAt))
			}
		}
		tw.Flush()
	}
	return ExitOK
}

// nomadStatus is Nomad's status of the job in words.
func nomadStatus(st *jobs.Status) string {
	switch {
	case st.Status == "":
		return "gone from Nomad (ended and collected)"
	case st.Stopped && st.Status != "dead":
		return st.Status + " (stopping)"
	case st.Stopped:
		return "dead (stopped)"
	}
	return st.Status
}

// holdText describes the admission's hold: what it still reserves, or
// that it was released.
func holdText(r *jobs.Record) string {
	switch {
	case r.Open():
		return fmt.Sprintf("%s reserved (hold %s)", r.Hold.Amount, r.Hold.ID)
	case r.State == jobs.Failed:
		return fmt.Sprintf("settlement failed (hold %s)", r.Hold.ID)
	}
	return fmt.Sprintf("released: nothing reserved any more (last hold %s)", r.Hold.ID)
}

// quoteText is "up to X SP for D at <prices>".
func quoteText(q market.Quote) string {
	p := q.Prices
	return fmt.Sprintf("up to %s for %s at %s per core-hour, %s per GiB-hour of memory, %s per GiB-hour of disk",
		q.Max, q.MaxRuntime, p.CPU, p.Memory, p.Disk)
}

func jobList(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "job list", "", `
List your jobs' admissions, newest first: each run of a job is one
admission, with its state, quote, charge and invoice.`)
	limit := c.fs.Int("limit", 0, "show at most this many (default: the hub's, 50; at most 500)")
	if _, rc, ok := c.parse(args, 0, 0); !ok {
		return rc
	}
	if *limit < 0 {
		return c.failf("-limit: %d: want a positive number", *limit)
	}
	recs, err := c.client().Jobs(ctx, *limit)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(recs)
	}
	if len(recs) == 0 {
		fmt.Fprintln(c.env.Stdout, "No jobs yet. Run one with: spice job run FILE")
		return ExitOK
	}
	tw := c.table()
	fmt.Fprintln(tw, "Job\tState\tQuote\tCharged\tInvoice\tAdmitted")
	for _, r := range recs {
		inv := "-"
		if r.Invoice > 0 {
			inv = fmt.Sprint(r.Invoice)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.JobID, r.State, r.Quote.Max, r.Charged, inv, r.CreatedAt.UTC().Format("2006-01-02 15:04:05"))
	}
	tw.Flush()
	return ExitOK
}

func jobStop(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "job stop", "ID", `
Stop your job ID. Nomad stops its allocations; the hub then charges what ran,
returns the rest of the hold to your account and issues the invoice (see
spice job status ID).`)
	pos, rc, ok := c.parse(args, 1, 1)
	if !ok {
		return rc
	}
	r, err := c.client().StopJob(ctx, pos[0])
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(r)
	}
	fmt.Fprintf(c.env.Stdout, "Job %q is stopping. Once its allocations have stopped it is settled and invoiced: see spice job status %s\n", r.JobID, r.JobID)
	return ExitOK
}

func jobLogs(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "job logs", "ID", `
Print what a task of your job ID wrote to its standard output (or, with
-stderr, its standard error). Without -alloc, the newest allocation that
started; without -task, its only task. -json prints the output as a JSON
string.`)
	alloc := c.fs.String("alloc", "", "an allocation ID (the full ID, as spice job status shows it)")
	task := c.fs.String("task", "", "a task name (needed when the allocation has several)")
	stderr := c.fs.Bool("stderr", false, "print standard error instead of standard output")
	limit := c.fs.Int("limit", 0, "print at most this many bytes (default: the hub's, 1 MiB; at most 16 MiB)")
	pos, rc, ok := c.parse(args, 1, 1)
	if !ok {
		return rc
	}
	if *limit < 0 {
		return c.failf("-limit: %d: want a positive number of bytes", *limit)
	}
	out, err := c.client().JobLogs(ctx, pos[0], client.LogsOptions{Alloc: *alloc, Task: *task, Stderr: *stderr, Limit: *limit})
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(out)
	}
	fmt.Fprint(c.env.Stdout, out)
	return ExitOK
}

// block indents every line of s by four spaces, without a final newline.
func block(s string) string { return indent(strings.TrimRight(s, "\n")) }

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("15:04:05")
}
