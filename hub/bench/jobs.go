package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/agent/agentapi"
	"github.com/spiceroute/spiceroute/hub"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/jobs"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/postgres/pgcluster"
	"github.com/spiceroute/spiceroute/scheduler/nomad"
	"github.com/spiceroute/spiceroute/scheduler/nomadagent"
)

// JobsConfig configures the jobs benchmark.
type JobsConfig struct {
	NomadBin string // the nomad binary (required)
	Samples  int    // submit-to-running samples per side (default 12)
	Clients  int    // concurrent submitters in the throughput runs (default 32)
	// Jobs is how many jobs each throughput run registers; each side runs
	// twice, interleaved (default 3000). Both sides register the same
	// number: Nomad's cost per job grows with the jobs it holds (it
	// publishes gauges for each every second), so runs of equal duration
	// would charge the faster side more per job.
	Jobs    int
	TempDir string
	// PolicyFile is the admission policy whose renter caps the benchmark
	// lifts (default hub.DefaultPolicyFile).
	PolicyFile string
	// Pin runs Nomad on CPU 0, and the hub, PostgreSQL and the clients on
	// CPU 1 (Linux, two CPUs or more): Nomad gets the same core on both
	// sides, and the hub does not take Nomad's CPU, as when the hub runs on
	// its own machine. Without it everything shares every CPU.
	Pin bool
	// CPUProfile, if set, is where a CPU profile of this process (the hub
	// and the clients) during the first throughput run through the hub is
	// written.
	CPUProfile string
	// PGStats prints PostgreSQL's statements by total time from the first
	// throughput run to the last, both sides and the settlements between
	// them (the cluster must preload pg_stat_statements: PGStatsSettings).
	PGStats bool
	// NomadProfiles, if set, is a directory where CPU profiles of Nomad's
	// agent during each throughput run are written (direct-0.prof,
	// hub-0.prof, ...).
	NomadProfiles string
}

// PGStatsSettings are the settings a cluster needs for JobsConfig.PGStats.
var PGStatsSettings = map[string]string{"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "all"}

// JobsResult is what the jobs benchmark measured.
type JobsResult struct {
	DirectP50, HubP50 time.Duration // submit-to-running, median
	LatencyRatio      float64       // HubP50 / DirectP50 (target <= 1.10)
	DirectRate        float64       // jobs registered per second, straight to Nomad
	HubRate           float64       // jobs admitted per second through the hub's /v1 gateway
	RegisteredRatio   float64       // HubRate / DirectRate
	// The same until Nomad has also evaluated every job of a run: Nomad
	// answers a registration before its scheduler evaluates the job, and
	// under load the evaluations fall behind, so registrations alone
	// outrun what Nomad can sustain.
	DirectSustained, HubSustained float64
	ThroughputRatio               float64 // HubSustained / DirectSustained (target >= 0.80, pinned)
	// CPUBound is the CPU all the processes spent per job directly over
	// through the hub: with shared CPUs, the throughput ratio tends to it.
	CPUBound float64
	Books    Books // the hub's books once every admission is settled
}

// Books is what the benchmark's admissions did to the hub's ledger.
type Books struct {
	Admissions int64         // admissions the hub recorded
	Sum        int64         // every account's posted balance summed, µSP: 0 when nothing was created or lost
	RenterHeld ledger.Amount // still held on the renter's account (0 once settled)
	RenterPaid ledger.Amount // what the renter paid: for the latency jobs' run time only
}

// benchFunds is what the benchmark's renter is issued.
const benchFunds = 1_000_000 * ledger.MicroPerSpice

// books settles every admission and reads the hub's books.
func books(ctx context.Context, s *hub.Server, renter ledger.ID) (Books, error) {
	var b Books
	if err := s.Jobs.Settle(ctx); err != nil {
		return b, err
	}
	pool := s.Store.Pool()
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM job_admissions`).Scan(&b.Admissions); err != nil {
		return b, fmt.Errorf("bench: admissions: %w", err)
	}
	if err := pool.QueryRow(ctx, `SELECT coalesce(sum(credits_posted - debits_posted), 0) FROM accounts`).Scan(&b.Sum); err != nil {
		return b, fmt.Errorf("bench: balances: %w", err)
	}
	a, err := s.Store.Account(ctx, renter)
	if err != nil {
		return b, fmt.Errorf("bench: the renter's account: %w", err)
	}
	b.RenterHeld, b.RenterPaid = a.DebitsPending, benchFunds-a.Balance()
	return b, nil
}

// benchPolicy is the shipped admission policy with its per-renter caps
// lifted, so that thousands of benchmark jobs can be open at once.
func benchPolicy(shipped string) (string, error) {
	b, err := os.ReadFile(shipped)
	if err != nil {
		return "", fmt.Errorf("bench: admission policy: %w", err)
	}
	renterBlock := regexp.MustCompile(`(?m)^renter \{[^}]*\}`)
	if !renterBlock.Match(b) {
		return "", fmt.Errorf("bench: %s has no renter { ... } block to lift", shipped)
	}
	return renterBlock.ReplaceAllString(string(b), "renter {\n  max_jobs      = 1000000\n  max_cpu_mhz   = 1000000000\n  max_memory_mb = 1000000000\n}"), nil
}

// Jobs measures, in one run against one Nomad dev agent, what the hub adds
// to running a job, compared with submitting the same job straight to
// Nomad with a management token:
//
//   - submit-to-running latency: a small exec job is registered, and the
//     time until its task runs is measured (both sides poll Nomad the same
//     way); direct and hub submissions alternate;
//   - admission throughput: clients register the same number of jobs that
//     cannot be placed (so only registration and scheduling are measured,
//     not task starts), twice each side, in the order direct, hub, hub,
//     direct, after an unmeasured run, all with the same job IDs in the
//     renter's namespace, each run's jobs purged before the next. A run's
//     rate is counted until the last registration is answered, and until
//     Nomad's scheduler has also evaluated every job: the target is judged
//     on the second, the rate either side can sustain. 32 clients by
//     default, to load Nomad to capacity either way: with 8, each client
//     waits for its answer before sending the next job, the rate measures
//     latency rather than capacity, and through the hub, where each job
//     also spends ~5 ms in admission, Nomad sees fewer registrations at
//     once than directly.
//
// The throughput target is judged pinned (cfg.Pin): Nomad has one CPU to
// itself both ways, as on a hub whose Nomad servers have their own
// machines. Without -pin, Nomad alone keeps two CPUs nearly busy, the
// hub's and PostgreSQL's CPU per admission comes out of Nomad's, and the
// ratio measured is what the CPU per job of each side allows (CPUBound).
//
// Through the hub, a submission is the renter's: the stock Nomad API client
// pointed at the hub's /v1 gateway with a SpiceRoute token, so admission
// (policy, quote, ledger hold, the admission record) is included.
func Jobs(ctx context.Context, cl *pgcluster.Cluster, cfg JobsConfig, out io.Writer) (*JobsResult, error) {
	if cfg.Samples <= 0 {
		cfg.Samples = 12
	}
	if cfg.Clients <= 0 {
		cfg.Clients = 32
	}
	if cfg.Jobs <= 0 {
		cfg.Jobs = 3000
	}
	contrib := ledger.NewID()
	ac := nomadagent.DefaultConfig()
	ac.Binary, ac.NodePool, ac.Logger = cfg.NomadBin, nomad.DefaultNodePool, quietLogger()
	ac.Meta = agentapi.NodeMeta(contrib.String(), "", "", 0, "")
	// Every client here, the hub included, connects from 127.0.0.1: lift
	// Nomad's 100 connections per client address.
	ac.ExtraHCL = "limits {\n  http_max_conns_per_client = 0\n}\n"
	agent, err := nomadagent.Start(ctx, ac)
	if err != nil {
		return nil, err
	}
	defer agent.Stop()

	if cfg.PolicyFile == "" {
		cfg.PolicyFile = hub.DefaultPolicyFile
	}
	lifted, err := benchPolicy(cfg.PolicyFile)
	if err != nil {
		return nil, err
	}
	policy := filepath.Join(cfg.TempDir, "bench-policy.hcl")
	if err := os.WriteFile(policy, []byte(lifted), 0o644); err != nil {
		return nil, err
	}
	s, stop, err := startHub(ctx, cl, "bench_jobs", cfg.TempDir, func(hc *hub.Config) {
		hc.Nomad = nomad.Config{Address: agent.Addr, Token: agent.ManagementToken}
		hc.PolicyFile = policy
		// Settlement runs between the throughput runs (s.Jobs.Settle
		// below), not during them at whatever moment its ticker fires.
		hc.SettleInterval = time.Hour
	})
	if err != nil {
		return nil, err
	}
	defer stop()

	if cfg.Pin {
		if err := pinSplit(agent.PID(), cl.PID()); err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "jobs: pinned: Nomad on CPU 0; the hub, PostgreSQL and the clients on CPU 1\n")
	}
	renter := ledger.NewID()
	if err := benchAccounts(ctx, s, renter, contrib); err != nil {
		return nil, err
	}
	token, err := s.Store.CreateToken(ctx, auth.Principal{Name: "bench", Role: auth.RoleRenter}, "bench")
	if err != nil {
		return nil, err
	}
	// Both sides' clients keep enough idle connections for every submitter,
	// and ask for uncompressed responses, as the hub does of Nomad: the
	// stock client asks for gzip, which costs Nomad about a third of its CPU
	// per registration, and the baseline is Nomad at its best.
	pooled := func(addr, token string) (*api.Client, error) {
		tr := cleanhttp.DefaultPooledTransport()
		tr.MaxIdleConnsPerHost = 4 * cfg.Clients
		tr.DisableCompression = true
		return api.NewClient(&api.Config{Address: addr, SecretID: token, HttpClient: &http.Client{Transport: nomad.Uncompressed(tr)}})
	}
	viaHub, err := pooled(s.URL(), token)
	if err != nil {
		return nil, err
	}
	direct, err := pooled(agent.Addr, agent.ManagementToken)
	if err != nil {
		return nil, err
	}
	// The throughput runs of both sides register the same job IDs in the
	// renter's namespace (see the rounds below).
	renterNS := s.Jobs.Sched.Namespace("bench")
	const directNS = "bench-direct"
	if _, err := direct.Namespaces().Register(&api.Namespace{Name: directNS}, nil); err != nil {
		return nil, err
	}
	// Warm both paths (the renter's namespace, connections) before measuring.
	if _, _, err := viaHub.Jobs().Register(unplaceable("warm-hub", ""), nil); err != nil {
		return nil, fmt.Errorf("bench: warm-up through the hub: %w", err)
	}
	if _, _, err := direct.Jobs().Register(unplaceable("warm-direct", directNS), nil); err != nil {
		return nil, err
	}
	// Stopped at once: an unplaceable job left registered would keep its
	// hold open to the end.
	if _, _, err := viaHub.Jobs().Deregister("warm-hub", true, nil); err != nil {
		return nil, fmt.Errorf("bench: stop the warm-up job: %w", err)
	}
	if _, _, err := direct.Jobs().Deregister("warm-direct", true, &api.WriteOptions{Namespace: directNS}); err != nil {
		return nil, err
	}

	res := &JobsResult{}
	fmt.Fprintf(out, "jobs: submit-to-running latency of a small exec job, %d samples each, alternating:\n", cfg.Samples)
	var dl, hl []time.Duration
	for i := 0; i < cfg.Samples; i++ {
		d, err := toRunning(ctx, direct, direct, fmt.Sprintf("lat-direct-%d", i), directNS, directNS)
		if err != nil {
			return nil, err
		}
		h, err := toRunning(ctx, viaHub, direct, fmt.Sprintf("lat-hub-%d", i), "", renterNS)
		if err != nil {
			return nil, err
		}
		dl, hl = append(dl, d), append(hl, h)
	}
	res.DirectP50, res.HubP50 = pct(dl, 50), pct(hl, 50)
	res.LatencyRatio = float64(res.HubP50) / float64(res.DirectP50)
	fmt.Fprintf(out, "  nomad directly    p50 %6.0f ms  p90 %6.0f ms\n", ms(res.DirectP50), ms(pct(dl, 90)))
	fmt.Fprintf(out, "  through the hub   p50 %6.0f ms  p90 %6.0f ms\n", ms(res.HubP50), ms(pct(hl, 90)))
	fmt.Fprintf(out, "  hub / direct = %.3f (target <= 1.10: %s)\n", res.LatencyRatio, verdict(res.LatencyRatio <= 1.10))

	fmt.Fprintf(out, "jobs: registrations per second, %d clients, 2 × %d jobs each side, in the order direct, hub, hub, direct:\n", cfg.Clients, cfg.Jobs)
	var dt, ht runTime
	var dcpu, hcpu cpuUse
	phases := map[string]time.Duration{} // per admission phase, summed over the hub's runs
	sample := func() cpuUse {
		return cpuUse{nomad: treeCPU(agent.PID()), postgres: treeCPU(cl.PID()), self: selfCPU()}
	}
	if cfg.PGStats {
		if err := resetPGStats(ctx, s); err != nil {
			return nil, err
		}
	}
	rate := func(t runTime) string {
		return fmt.Sprintf("%7.1f jobs/s registered, %7.1f evaluated", float64(cfg.Jobs)/t.registered.Seconds(), float64(cfg.Jobs)/t.evaluated.Seconds())
	}
	// purgeRun purges a run's jobs and waits for Nomad to finish with them.
	purgeRun := func() error {
		if err := purge(ctx, direct, renterNS, tpPrefix, cfg.Clients); err != nil {
			return err
		}
		return settled(ctx, direct)
	}
	directRun := func(round int) error {
		before := sample()
		nomadProf := profileNomad(ctx, direct, cfg, fmt.Sprintf("direct-%d", round))
		took, err := register(ctx, direct, direct, renterNS, renterNS, fmt.Sprintf("direct-%d", round), cfg.Clients, cfg.Jobs)
		dcpu = dcpu.add(sample().sub(before))
		if perr := <-nomadProf; perr != nil && err == nil {
			err = perr
		}
		if err != nil {
			return err
		}
		if err := purgeRun(); err != nil {
			return err
		}
		dt = dt.add(took)
		fmt.Fprintf(out, "    run %d, directly:        %s\n", round, rate(took))
		return nil
	}
	hubRun := func(round int) error {
		var prof *os.File
		if round == 0 && cfg.CPUProfile != "" {
			var err error
			if prof, err = os.Create(cfg.CPUProfile); err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(prof); err != nil {
				return err
			}
		}
		before := sample()
		_, phasesBefore, err := s.Jobs.Metrics.Observed()
		if err != nil {
			return err
		}
		nomadProf := profileNomad(ctx, direct, cfg, fmt.Sprintf("hub-%d", round))
		took, err := register(ctx, viaHub, direct, "", renterNS, fmt.Sprintf("hub-%d", round), cfg.Clients, cfg.Jobs)
		hcpu = hcpu.add(sample().sub(before))
		_, phasesAfter, perr := s.Jobs.Metrics.Observed()
		if perr != nil && err == nil {
			err = perr
		}
		for k, v := range phasesAfter {
			phases[k] += v - phasesBefore[k]
		}
		if perr := <-nomadProf; perr != nil && err == nil {
			err = perr
		}
		if prof != nil {
			pprof.StopCPUProfile()
			prof.Close()
		}
		if err != nil {
			return err
		}
		if err := purgeRun(); err != nil {
			return err
		}
		// The purged jobs' holds are released now, not in the next run.
		if err := s.Jobs.Settle(ctx); err != nil {
			return err
		}
		ht = ht.add(took)
		fmt.Fprintf(out, "    run %d, through the hub: %s\n", round, rate(took))
		return nil
	}
	// Nomad's blocked-evaluation tracker keeps an entry per job it ever
	// blocked, purged or not, for 15 minutes, and publishes a gauge for each
	// every second. With new job IDs every run, each run would be slower
	// than the one before (by half from the first to the fourth). So both
	// sides register the same IDs in the same namespace, and an unmeasured
	// run first fills the tracker: every measured run then starts with the
	// same entries. The order direct, hub, hub, direct shares out any drift
	// left.
	if _, err := register(ctx, direct, direct, renterNS, renterNS, "warm-up", cfg.Clients, cfg.Jobs); err != nil {
		return nil, err
	}
	if err := purgeRun(); err != nil {
		return nil, err
	}
	for round := 0; round < 2; round++ {
		first, second := directRun, hubRun
		if round == 1 {
			first, second = hubRun, directRun
		}
		if err := first(round); err != nil {
			return nil, err
		}
		if err := second(round); err != nil {
			return nil, err
		}
	}
	if res.Books, err = books(ctx, s, renter); err != nil {
		return nil, err
	}
	if res.Books.Sum != 0 || res.Books.RenterHeld != 0 {
		return nil, fmt.Errorf("bench: the books are wrong after the runs: balances sum to %d µSP, and the renter still has %s held", res.Books.Sum, res.Books.RenterHeld)
	}
	total := int64(2 * cfg.Jobs)
	res.DirectRate, res.HubRate = float64(total)/dt.registered.Seconds(), float64(total)/ht.registered.Seconds()
	res.RegisteredRatio = res.HubRate / res.DirectRate
	res.DirectSustained, res.HubSustained = float64(total)/dt.evaluated.Seconds(), float64(total)/ht.evaluated.Seconds()
	res.ThroughputRatio = res.HubSustained / res.DirectSustained
	fmt.Fprintf(out, "                    registered      registered and evaluated by Nomad's scheduler\n")
	fmt.Fprintf(out, "  nomad directly    %7.1f jobs/s  %7.1f jobs/s\n", res.DirectRate, res.DirectSustained)
	fmt.Fprintf(out, "  through the hub   %7.1f jobs/s  %7.1f jobs/s (each with a quote, a ledger hold and an admission record)\n", res.HubRate, res.HubSustained)
	res.CPUBound = float64(dcpu.total()) / float64(hcpu.total())
	if cfg.Pin {
		fmt.Fprintf(out, "  hub / direct      %7.3f         %7.3f (target >= 0.80 sustained: %s)\n", res.RegisteredRatio, res.ThroughputRatio, verdict(res.ThroughputRatio >= 0.80))
	} else {
		// Sharing two CPUs, the rates are what each side's CPU per job
		// allows: admission's CPU comes out of Nomad's.
		fmt.Fprintf(out, "  hub / direct      %7.3f         %7.3f (CPUs shared; the target is judged with -pin)\n", res.RegisteredRatio, res.ThroughputRatio)
		fmt.Fprintf(out, "  CPU per job, all processes: directly / through the hub = %.3f, the ratio CPU alone allows\n", res.CPUBound)
	}
	fmt.Fprintf(out, "  mean time per registration, directly: %.2f ms; through the hub: %.2f ms, of which admission's\n", ms(dt.latencies)/float64(total), ms(ht.latencies)/float64(total))
	fmt.Fprintf(out, "    checks %.2f ms, record %.2f ms, hold %.2f ms, and Nomad's answer %.2f ms\n",
		ms(phases[jobs.PhaseCheck])/float64(total), ms(phases[jobs.PhaseRecord])/float64(total), ms(phases[jobs.PhaseHold])/float64(total), ms(phases[jobs.PhaseRegister])/float64(total))
	fmt.Fprintf(out, "  CPU per registration, directly:     %s\n", dcpu.per(total))
	fmt.Fprintf(out, "  CPU per registration, through hub:  %s\n", hcpu.per(total))
	if cfg.PGStats {
		if err := printPGStats(ctx, s, total, out); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(out, "jobs: the books after %d admissions through the hub: balances sum to 0, no hold left on the renter, %s charged for what the latency jobs ran\n",
		res.Books.Admissions, res.Books.RenterPaid)
	return res, nil
}

func benchAccounts(ctx context.Context, s *hub.Server, renter, contrib ledger.ID) error {
	res, err := s.Ledger.CreateAccounts(ctx, ledger.System, []ledger.Account{
		{ID: renter, Owner: "bench", Kind: ledger.KindRenter}, {ID: contrib, Owner: "contributor", Kind: ledger.KindContributor}})
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Err != nil {
			return r.Err
		}
	}
	tr, err := s.Ledger.CreateTransfers(ctx, ledger.System, []ledger.Transfer{{ID: ledger.NewID(), DebitAccountID: s.IssuanceAccount(), CreditAccountID: renter, Amount: benchFunds}})
	if err != nil {
		return err
	}
	if tr[0].Err != nil {
		return tr[0].Err
	}
	return nil
}

// benchJob is a one-task batch exec job in the hub's node pool.
func benchJob(id, ns string, args ...string) *api.Job {
	j := api.NewBatchJob(id, id, "global", 50)
	if ns != "" {
		j.Namespace = &ns
	}
	pool := nomad.DefaultNodePool
	j.NodePool = &pool
	j.Meta = map[string]string{"spiceroute_max_runtime": "10m"}
	t := api.NewTask("t", "exec").SetConfig("command", "/bin/sh").SetConfig("args", args)
	t.Require(&api.Resources{CPU: ptr(20), MemoryMB: ptr(32)})
	tg := api.NewTaskGroup("g", 1).AddTask(t)
	tg.EphemeralDisk = &api.EphemeralDisk{SizeMB: ptr(150)} // over the task logs' 100 MB
	tg.ReschedulePolicy = &api.ReschedulePolicy{Attempts: ptr(0), Unlimited: ptrBool(false)}
	j.AddTaskGroup(tg)
	return j
}

// tpPrefix starts the IDs of the throughput runs' jobs.
const tpPrefix = "tp"

// metaRun labels a throughput run's jobs: each run's are new jobs to the
// hub (a new submission, not a re-run of the last one's), with the same
// IDs in Nomad.
const metaRun = "bench_run"

// unplaceable is a job no node satisfies: registering it costs Nomad a
// registration and an evaluation, nothing more.
func unplaceable(id, ns string) *api.Job {
	j := benchJob(id, ns, "-c", "true")
	j.Constrain(api.NewConstraint("${meta.spiceroute_bench}", "=", "never"))
	return j
}

// toRunning registers a job through c and returns how long until its task
// runs, as Nomad (read through watch) reports it; then purges it.
func toRunning(ctx context.Context, c, watch *api.Client, id, ns, watchNS string) (time.Duration, error) {
	j := benchJob(id, ns, "-c", "sleep 30")
	start := time.Now()
	if _, _, err := c.Jobs().Register(j, nil); err != nil {
		return 0, fmt.Errorf("bench: register %s: %w", id, err)
	}
	q := &api.QueryOptions{Namespace: watchNS}
	deadline := start.Add(2 * time.Minute)
	for {
		allocs, _, err := watch.Jobs().Allocations(id, false, q.WithContext(ctx))
		if err != nil {
			return 0, err
		}
		for _, a := range allocs {
			if ts := a.TaskStates["t"]; ts != nil && ts.State == "running" {
				d := time.Since(start)
				if _, _, err := watch.Jobs().Deregister(id, true, (&api.WriteOptions{Namespace: watchNS}).WithContext(ctx)); err != nil {
					return 0, err
				}
				return d, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("bench: job %s did not start within 2 minutes", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// purge deregisters and purges the jobs a throughput run registered, so
// that every run starts from the same Nomad state: Nomad's leader publishes
// a gauge per job summary every second under one lock that registrations
// also take, so a run that followed thousands of leftover jobs would be
// slower for that alone.
func purge(ctx context.Context, c *api.Client, ns, prefix string, clients int) error {
	stubs, _, err := c.Jobs().PrefixList(prefix + "-")
	if ns != "" {
		stubs, _, err = c.Jobs().List((&api.QueryOptions{Namespace: ns, Prefix: prefix + "-"}).WithContext(ctx))
	}
	if err != nil {
		return fmt.Errorf("bench: list %s jobs: %w", prefix, err)
	}
	ids := make(chan string)
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				if _, _, err := c.Jobs().Deregister(id, true, (&api.WriteOptions{Namespace: ns}).WithContext(ctx)); err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, j := range stubs {
		ids <- j.ID
	}
	close(ids)
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("bench: purge %s jobs: %w", prefix, firstErr)
	}
	return nil
}

// profileNomad reads a CPU profile of Nomad's agent for the first seconds
// of a throughput run into cfg.NomadProfiles/name.prof, if that is set; the
// channel yields the outcome.
func profileNomad(ctx context.Context, c *api.Client, cfg JobsConfig, name string) <-chan error {
	done := make(chan error, 1)
	if cfg.NomadProfiles == "" {
		done <- nil
		return done
	}
	const secs = 4 // a run of 3000 jobs takes 5 s or more on either side
	go func() {
		b, err := c.Agent().CPUProfile(api.PprofOptions{Seconds: secs}, (&api.QueryOptions{}).WithContext(ctx))
		if err == nil {
			err = os.WriteFile(filepath.Join(cfg.NomadProfiles, name+".prof"), b, 0o644)
		}
		if err != nil {
			err = fmt.Errorf("bench: Nomad's CPU profile: %w", err)
		}
		done <- err
	}()
	return done
}

// settled waits until Nomad's scheduler has had no evaluation to process
// for a while (a run leaves evaluations behind, and a purge one per job),
// so that a run does not pay for the previous one's. Nomad publishes its
// broker's gauges about once a second: three readings 500 ms apart must
// all be zero.
func settled(ctx context.Context, c *api.Client) error {
	deadline := time.Now().Add(2 * time.Minute)
	for quiet := 0; quiet < 3; {
		m, _, err := c.Operator().MetricsSummary((&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return fmt.Errorf("bench: Nomad's metrics: %w", err)
		}
		busy := 0.0
		for _, g := range m.Gauges {
			switch g.Name {
			case "nomad.nomad.broker.total_ready", "nomad.nomad.broker.total_unacked", "nomad.nomad.broker.total_pending", "nomad.nomad.plan.queue_depth":
				busy += float64(g.Value)
			}
		}
		if quiet++; busy > 0 {
			quiet = 0
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: Nomad still has %v evaluations to process after 2 minutes", busy)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return nil
}

// runTime is how long a throughput run took until the last registration
// was answered and until Nomad had evaluated every job, and the sum of the
// registrations' own latencies.
type runTime struct{ registered, evaluated, latencies time.Duration }

func (a runTime) add(b runTime) runTime {
	return runTime{a.registered + b.registered, a.evaluated + b.evaluated, a.latencies + b.latencies}
}

// register has clients register jobs distinct unplaceable jobs through c,
// then waits until Nomad (read through watch, in namespace watchNS) has
// evaluated the last of them, and returns how long both took. Every run
// registers the same job IDs (tpPrefix-1, tpPrefix-2, ...), labelled with
// run in their meta.
func register(ctx context.Context, c, watch *api.Client, ns, watchNS, run string, clients, jobs int) (runTime, error) {
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var last api.JobRegisterResponse // the registration whose evaluation Nomad created last
	var latencies time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(jobs) && ctx.Err() == nil; i = next.Add(1) {
				sent := time.Now()
				j := unplaceable(fmt.Sprintf("%s-%d", tpPrefix, i), ns)
				j.Meta[metaRun] = run
				resp, _, err := c.Jobs().Register(j, (&api.WriteOptions{}).WithContext(ctx))
				took := time.Since(sent)
				mu.Lock()
				latencies += took
				if err != nil {
					firstErr = errors.Join(firstErr, err)
				} else if resp.EvalCreateIndex > last.EvalCreateIndex {
					last = *resp
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	t := runTime{registered: time.Since(start), latencies: latencies}
	if firstErr != nil {
		return t, fmt.Errorf("bench: register: %w", firstErr)
	}
	// Nomad's broker hands evaluations of one priority out oldest first:
	// once the newest is evaluated, the others have been too (or are
	// being, by the other scheduler worker).
	q := (&api.QueryOptions{Namespace: watchNS}).WithContext(ctx)
	for {
		ev, _, err := watch.Evaluations().Info(last.EvalID, q)
		if err != nil {
			return t, fmt.Errorf("bench: evaluation %s: %w", last.EvalID, err)
		}
		if ev.Status != api.EvalStatusPending {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.evaluated = time.Since(start)
	return t, ctx.Err()
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ptr(v int) *int       { return &v }
func ptrBool(v bool) *bool { return &v }

// cpuUse is CPU time used by the processes of a throughput run: Nomad's
// agent, PostgreSQL's server and this process (the hub and the clients).
type cpuUse struct{ nomad, postgres, self time.Duration }

func (a cpuUse) add(b cpuUse) cpuUse {
	return cpuUse{a.nomad + b.nomad, a.postgres + b.postgres, a.self + b.self}
}
func (a cpuUse) total() time.Duration { return a.nomad + a.postgres + a.self }

func (a cpuUse) sub(b cpuUse) cpuUse {
	return cpuUse{a.nomad - b.nomad, a.postgres - b.postgres, a.self - b.self}
}

// per formats a's CPU per job of n.
func (a cpuUse) per(n int64) string {
	if n == 0 {
		return "no jobs"
	}
	f := func(d time.Duration) float64 { return ms(d) / float64(n) }
	return fmt.Sprintf("nomad %.2f ms, postgres %.2f ms, hub and clients %.2f ms, total %.2f ms",
		f(a.nomad), f(a.postgres), f(a.self), f(a.total()))
}

// resetPGStats creates pg_stat_statements in the hub's database and
// forgets what it counted so far.
func resetPGStats(ctx context.Context, s *hub.Server) error {
	if _, err := s.Store.Pool().Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		return fmt.Errorf("bench: pg_stat_statements (start the cluster with bench.PGStatsSettings): %w", err)
	}
	_, err := s.Store.Pool().Exec(ctx, `SELECT pg_stat_statements_reset()`)
	return err
}

// printPGStats prints the statements PostgreSQL spent the most time on
// since resetPGStats, with their calls per job admitted through the hub.
func printPGStats(ctx context.Context, s *hub.Server, admitted int64, out io.Writer) error {
	rows, err := s.Store.Pool().Query(ctx, `SELECT calls, total_exec_time, regexp_replace(query, '\s+', ' ', 'g')
		FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		ORDER BY total_exec_time DESC LIMIT 15`)
	if err != nil {
		return fmt.Errorf("bench: pg_stat_statements: %w", err)
	}
	defer rows.Close()
	fmt.Fprintf(out, "jobs: PostgreSQL statements during the throughput runs (both sides), by execution time:\n")
	for rows.Next() {
		var calls int64
		var total float64
		var q string
		if err := rows.Scan(&calls, &total, &q); err != nil {
			return err
		}
		if len(q) > 110 {
			q = q[:110] + "…"
		}
		fmt.Fprintf(out, "  %7.2f calls/job %8.1f ms  %s\n", float64(calls)/float64(max(admitted, 1)), total, q)
	}
	return rows.Err()
}
