package bench

import (
	"context"
	"errors"
	"fmt"
	"github.com/spiceroute/spiceroute/agent/agentapi"
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
	"github.com/spiceroute/spiceroute/hub"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/postgres/pgcluster"
	"github.com/spiceroute/spiceroute/scheduler/nomad"
	"github.com/spiceroute/spiceroute/scheduler/nomadagent"
)

// JobsConfig configures the jobs benchmark.
type JobsConfig struct {
	NomadBin string        // the nomad binary (required)
	Samples  int           // submit-to-running samples per side (default 12)
	Clients  int           // concurrent submitters in the throughput runs (default 8)
	Duration time.Duration // per throughput run; each side runs twice, interleaved (default 5s)
	TempDir  string
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
}

// JobsResult is what the jobs benchmark measured.
type JobsResult struct {
	DirectP50, HubP50 time.Duration // submit-to-running, median
	LatencyRatio      float64       // HubP50 / DirectP50 (target <= 1.10)
	DirectRate        float64       // jobs registered per second, straight to Nomad
	HubRate           float64       // jobs admitted per second through the hub's /v1 gateway
	ThroughputRatio   float64       // HubRate / DirectRate (target >= 0.80)
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
//   - admission throughput: clients register jobs that cannot be placed
//     (so only registration and scheduling are measured, not task starts)
//     for a fixed time, direct and through the hub alternating twice.
//
// Through the hub, a submission is the renter's: the stock Nomad API client
// pointed at the hub's /v1 gateway with a SpiceRoute token, so admission
// (policy, quote, ledger hold, the admission record) is included.
func Jobs(ctx context.Context, cl *pgcluster.Cluster, cfg JobsConfig, out io.Writer) (*JobsResult, error) {
	if cfg.Samples <= 0 {
		cfg.Samples = 12
	}
	if cfg.Clients <= 0 {
		cfg.Clients = 8
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 5 * time.Second
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
	// Both sides' clients keep enough idle connections for every submitter.
	pooled := func(addr, token string) (*api.Client, error) {
		tr := cleanhttp.DefaultPooledTransport()
		tr.MaxIdleConnsPerHost = 4 * cfg.Clients
		return api.NewClient(&api.Config{Address: addr, SecretID: token, HttpClient: &http.Client{Transport: tr}})
	}
	viaHub, err := pooled(s.URL(), token)
	if err != nil {
		return nil, err
	}
	direct, err := pooled(agent.Addr, agent.ManagementToken)
	if err != nil {
		return nil, err
	}
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

	res := &JobsResult{}
	fmt.Fprintf(out, "jobs: submit-to-running latency of a small exec job, %d samples each, alternating:\n", cfg.Samples)
	var dl, hl []time.Duration
	for i := 0; i < cfg.Samples; i++ {
		d, err := toRunning(ctx, direct, direct, fmt.Sprintf("lat-direct-%d", i), directNS, directNS)
		if err != nil {
			return nil, err
		}
		h, err := toRunning(ctx, viaHub, direct, fmt.Sprintf("lat-hub-%d", i), "", "renter-bench")
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

	fmt.Fprintf(out, "jobs: registrations per second, %d clients, 2 × %s each side, alternating:\n", cfg.Clients, cfg.Duration)
	var dn, hn int64
	for round := 0; round < 2; round++ {
		n, err := register(ctx, direct, directNS, fmt.Sprintf("tp-direct-%d", round), cfg.Clients, cfg.Duration)
		if err != nil {
			return nil, err
		}
		if err := purge(ctx, direct, directNS, fmt.Sprintf("tp-direct-%d", round), cfg.Clients); err != nil {
			return nil, err
		}
		dn += n
		var prof *os.File
		if round == 0 && cfg.CPUProfile != "" {
			if prof, err = os.Create(cfg.CPUProfile); err != nil {
				return nil, err
			}
			if err := pprof.StartCPUProfile(prof); err != nil {
				return nil, err
			}
		}
		n, err = register(ctx, viaHub, "", fmt.Sprintf("tp-hub-%d", round), cfg.Clients, cfg.Duration)
		if prof != nil {
			pprof.StopCPUProfile()
			prof.Close()
		}
		if err != nil {
			return nil, err
		}
		if err := purge(ctx, direct, "renter-bench", fmt.Sprintf("tp-hub-%d", round), cfg.Clients); err != nil {
			return nil, err
		}
		hn += n
	}
	secs := 2 * cfg.Duration.Seconds()
	res.DirectRate, res.HubRate = float64(dn)/secs, float64(hn)/secs
	res.ThroughputRatio = res.HubRate / res.DirectRate
	fmt.Fprintf(out, "  nomad directly    %7.1f jobs/s\n", res.DirectRate)
	fmt.Fprintf(out, "  through the hub   %7.1f jobs/s (each with a quote, a ledger hold and an admission record)\n", res.HubRate)
	fmt.Fprintf(out, "  hub / direct = %.3f (target >= 0.80: %s)\n", res.ThroughputRatio, verdict(res.ThroughputRatio >= 0.80))
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
	tr, err := s.Ledger.CreateTransfers(ctx, ledger.System, []ledger.Transfer{{ID: ledger.NewID(), DebitAccountID: s.IssuanceAccount(), CreditAccountID: renter, Amount: 1_000_000 * ledger.MicroPerSpice}})
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

// register has clients register distinct unplaceable jobs through c for d
// and returns how many were registered.
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

func register(ctx context.Context, c *api.Client, ns, prefix string, clients int, d time.Duration) (int64, error) {
	var n atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; time.Now().Before(end) && ctx.Err() == nil; i++ {
				if _, _, err := c.Jobs().Register(unplaceable(fmt.Sprintf("%s-%d-%d", prefix, w, i), ns), (&api.WriteOptions{}).WithContext(ctx)); err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, err)
					mu.Unlock()
					return
				}
				n.Add(1)
			}
		}(w)
	}
	wg.Wait()
	if firstErr != nil {
		return 0, fmt.Errorf("bench: register: %w", firstErr)
	}
	return n.Load(), nil
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ptr(v int) *int       { return &v }
func ptrBool(v bool) *bool { return &v }
