package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spiceroute/spiceroute/hub"
	"github.com/spiceroute/spiceroute/hub/audit"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/bench"
	"github.com/spiceroute/spiceroute/hub/contrib"
	"github.com/spiceroute/spiceroute/hub/devstack"
	"github.com/spiceroute/spiceroute/hub/payout"
	"github.com/spiceroute/spiceroute/hub/postgres"
	"github.com/spiceroute/spiceroute/hub/postgres/pgcluster"
)

// Commands that run servers or talk to the database directly.
func init() {
	Register("hub", "Run a hub: ledger, transparency log and API", runHub)
	Register("hub token", "Create an API token directly in the hub's database (first operator)", runHubToken)
	Register("dev", "Run a local dev stack (PostgreSQL, hub, demo accounts) until Ctrl-C", runDev)
	Register("ledger verify", "Audit a hub's ledger from its public transparency log", runLedgerVerify)
	Register("bench ledger", "Measure ledger throughput against pgbench, and API latency", runBenchLedger)
	Register("bench jobs", "Measure what the hub adds to running jobs, against Nomad directly", runBenchJobs)
	Register("bench agent", "Measure the contributor agent's own memory and CPU footprint", runBenchAgent)
	Register("bench join", "Measure 'spice agent join' to node ready, against a bare Nomad client", runBenchJoin)
}

// flagSet returns a flag set that prints errors and usage to env.Stderr.
func flagSet(env Env, name, synopsis, help string) *flag.FlagSet {
	fs := flag.NewFlagSet("spice "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "Usage: spice %s [options]%s\n\n  %s\n\nOptions:\n\n", name, synopsis, strings.ReplaceAll(strings.TrimSpace(help), "\n", "\n  "))
		fs.PrintDefaults()
	}
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK, false
		}
		return ExitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "Error: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return ExitUsage, false
	}
	return 0, true
}

func logger(env Env, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: l}))
}

func runHub(ctx context.Context, args []string, env Env) int {
	cfg := hub.DefaultConfig()
	fs := flagSet(env, "hub", "", `Runs a SpiceRoute hub until SIGINT or SIGTERM. The database is migrated on start;
the signing key is created if the key file does not exist.`)
	fs.StringVar(&cfg.Name, "name", env.Getenv("SPICE_HUB_NAME"), "the hub's name: its log origin and key name (env SPICE_HUB_NAME)")
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "HTTP listen address")
	fs.StringVar(&cfg.DatabaseURL, "database", env.Getenv("DATABASE_URL"), "PostgreSQL URL (env DATABASE_URL)")
	fs.StringVar(&cfg.KeyFile, "key", "hub.key", "the log signing key file")
	fs.DurationVar(&cfg.CheckpointInterval, "checkpoint-interval", cfg.CheckpointInterval, "longest wait for a signed checkpoint after a commit (<= 1s)")
	fs.Float64Var(&cfg.API.RatePerToken, "rate", cfg.API.RatePerToken, "requests per second allowed per token")
	fs.IntVar(&cfg.API.Burst, "burst", cfg.API.Burst, "request burst allowed per token")
	fs.StringVar(&cfg.Nomad.Address, "nomad", env.Getenv("SPICE_NOMAD_ADDR"), "the Nomad cluster renters' jobs run on, e.g. http://127.0.0.1:4646 (env SPICE_NOMAD_ADDR; empty: a ledger-only hub)")
	nomadTokenFile := fs.String("nomad-token-file", "", "file holding the hub's Nomad ACL token (default: env SPICE_NOMAD_TOKEN)")
	fs.StringVar(&cfg.Nomad.NodePool, "node-pool", "", "the node pool contributors' machines join (default spiceroute)")
	fs.StringVar(&cfg.PolicyFile, "policy", cfg.PolicyFile, "the admission policy file")
	fs.IntVar(&cfg.CommissionBP, "commission", cfg.CommissionBP, "the hub's commission in basis points of what renters pay (-1: none)")
	fs.DurationVar(&cfg.SettleInterval, "settle-interval", time.Minute, "how often running jobs are settled")
	fs.DurationVar(&cfg.Pricing.Interval, "price-interval", cfg.Pricing.Interval, "how often prices move with supply and demand (0: never; prices stay as operators set them)")
	fs.Int64Var(&cfg.Pricing.TargetBP, "price-target-bp", cfg.Pricing.TargetBP, "target utilization in basis points: prices rise above it and fall below it")
	fs.Int64Var(&cfg.Pricing.GainBP, "price-gain-bp", cfg.Pricing.GainBP, "relative price change per unit of utilization off the target, basis points")
	fs.Int64Var(&cfg.Pricing.MaxStepBP, "price-max-step-bp", cfg.Pricing.MaxStepBP, "largest price change per interval, basis points")
	fs.Int64Var(&cfg.Pricing.FloorBP, "price-floor-bp", cfg.Pricing.FloorBP, "lowest price, basis points of the base price operators set (at least the contributors' cheapest CPU floor)")
	fs.Int64Var(&cfg.Pricing.CeilingBP, "price-ceiling-bp", cfg.Pricing.CeilingBP, "highest price, basis points of the base price operators set")
	fs.StringVar(&cfg.Payout.Dir, "payout-dir", "", "where payout batch files (CSV, ISO 20022 pain.001) are written; setting any -payout- flag turns payouts on")
	fs.Int64Var(&cfg.Payout.RateCents, "payout-rate-cents", 0, "the redemption rate: euro cents paid per SP")
	payoutIBAN := fs.String("payout-debtor-iban", "", "the IBAN of the hub's bank account that pays contributors")
	payoutName := fs.String("payout-debtor-name", "", "the holder of the hub's bank account")
	payoutBIC := fs.String("payout-debtor-bic", "", "the BIC of the hub's bank (optional)")
	fs.BoolVar(&cfg.Payout.Schedule, "payout-schedule", false, "pay each month's payouts automatically once it has ended (default: operators run them)")
	fs.DurationVar(&cfg.SpotChecks.Interval, "spot-check-interval", contrib.DefaultSpotCheckInterval, "how often contributors' machines are spot-checked")
	fs.Float64Var(&cfg.SpotChecks.Fraction, "spot-check-fraction", contrib.DefaultSpotCheckFraction, "the fraction of machines each spot-check round checks with a known job, 0 to 1 (0: none)")
	nomadServers := fs.String("nomad-servers", env.Getenv("SPICE_NOMAD_SERVERS"), "the Nomad servers' RPC addresses contributors' machines join, host:port,... (env SPICE_NOMAD_SERVERS)")
	regions := fs.String("regions", "", "regions agents measure their round-trip time to: name=url,... (e.g. eu-west=https://hub.eu.example/healthz)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	var err error
	if cfg.Contrib.Regions, err = contrib.ParseRegions(*regions); err != nil {
		fmt.Fprintf(env.Stderr, "Error: -regions: %v\n", err)
		return ExitUsage
	}
	for _, a := range strings.Split(*nomadServers, ",") {
		if a = strings.TrimSpace(a); a != "" {
			cfg.Contrib.NomadServers = append(cfg.Contrib.NomadServers, a)
		}
	}
	if cfg.Name == "" || cfg.DatabaseURL == "" {
		fmt.Fprintln(env.Stderr, "Error: -name and -database (or SPICE_HUB_NAME and DATABASE_URL) are required")
		return ExitUsage
	}
	cfg.Nomad.Token = env.Getenv("SPICE_NOMAD_TOKEN")
	if *nomadTokenFile != "" {
		b, err := os.ReadFile(*nomadTokenFile)
		if err != nil {
			fmt.Fprintf(env.Stderr, "Error: %v\n", err)
			return ExitUsage
		}
		cfg.Nomad.Token = strings.TrimSpace(string(b))
	}
	cfg.Payout.Debtor = payout.Party{Name: *payoutName, IBAN: payout.IBAN(*payoutIBAN), BIC: payout.BIC(*payoutBIC)}
	cfg.Logger = logger(env, *level)
	s, err := hub.Open(ctx, cfg)
	if err != nil {
		fmt.Fprintf(env.Stderr, "Error: %v\n", err)
		return ExitError
	}
	defer s.Close()
	fmt.Fprintf(env.Stdout, "hub %s listening on %s\nlog key: %s\n", cfg.Name, s.URL(), s.VKey)
	if err := s.Run(ctx); err != nil {
		fmt.Fprintf(env.Stderr, "Error: %v\n", err)
		return ExitError
	}
	return ExitOK
}

func runHubToken(ctx context.Context, args []string, env Env) int {
	fs := flagSet(env, "hub token", "", `Creates an API token by writing to the hub's database directly: how a new hub
gets its first operator. Later tokens are made through the API (spice token create).`)
	dbURL := fs.String("database", env.Getenv("DATABASE_URL"), "PostgreSQL URL (env DATABASE_URL)")
	principal := fs.String("principal", "", "who the token is for")
	role := fs.String("role", "operator", "operator, renter or contributor")
	name := fs.String("name", "", "a label for the token")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	r, err := auth.ParseRole(*role)
	if err != nil || *principal == "" || *dbURL == "" {
		fmt.Fprintln(env.Stderr, "Error: -principal, a valid -role and -database are required")
		return ExitUsage
	}
	st, err := postgres.Open(ctx, *dbURL)
	if err != nil {
		fmt.Fprintf(env.Stderr, "Error: %v\n", err)
		return ExitError
	}
	defer st.Close()
	secret, err := st.CreateToken(ctx, auth.Principal{Name: *principal, Role: r}, *name)
	if err != nil {
		fmt.Fprintf(env.Stderr, "Error: %v\n", err)
		return ExitError
	}
	fmt.Fprintln(env.Stdout, secret)
	return ExitOK
}

func runDev(ctx context.Context, args []string, env Env) int {
	var cfg devstack.Config
	fs := flagSet(env, "dev", "", `Starts an ephemeral PostgreSQL (or uses DATABASE_URL), a Nomad dev agent whose
client is the demo contributor's machine, a hub that runs renters' jobs on it,
a demo operator, renter (with 1000 SP) and contributor, prints the URLs, the
tokens and what to try, and runs until Ctrl-C, then stops everything it
started. The nomad binary is -nomad, else bin/nomad (make tools builds it),
else nomad on PATH; -no-nomad runs a hub without jobs.`)
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:7070", "hub listen address")
	fs.StringVar(&cfg.DatabaseURL, "database", env.Getenv("DATABASE_URL"), "use this PostgreSQL instead of an ephemeral one (env DATABASE_URL)")
	fs.StringVar(&cfg.DataDir, "data", "", "keep the key and database here across runs (default: a temporary directory)")
	fs.StringVar(&cfg.NomadBinary, "nomad", env.Getenv("SPICE_NOMAD_BIN"), "the nomad binary for the dev agent (env SPICE_NOMAD_BIN; default bin/nomad, else nomad on PATH)")
	fs.BoolVar(&cfg.NoNomad, "no-nomad", false, "run without a Nomad agent: a ledger-only hub, no jobs")
	level := fs.String("log-level", "warn", "debug, info, warn or error")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg.Logger = logger(env, *level)
	st, err := devstack.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintf(env.Stderr, "Error: %v\n", err)
		return ExitError
	}
	defer st.Close()
	st.PrintWelcome(env.Stdout)
	if err := st.Run(ctx); err != nil {
		fmt.Fprintf(env.Stderr, "Error: %v\n", err)
		return ExitError
	}
	fmt.Fprintln(env.Stdout, "stopped; everything started by spice dev is gone")
	return ExitOK
}

func runLedgerVerify(ctx context.Context, args []string, env Env) int {
	fs := flagSet(env, "ledger verify", "", `Reads only the hub's public log (signed checkpoint, hash tiles, entry bundles),
checks the signature and every tile against the signed root, replays every
transfer under the ledger's rules, and reports balances and the total issued.
With -database it also checks that the database's balances equal the replay.
With -state it remembers the last verified checkpoint and proves the new one
consistent with it (the log was only appended to).`)
	addr := fs.String("address", env.Addr, "the hub's address (env SPICE_ADDR)")
	logURL := fs.String("log", "", "the log's base URL (default <address>/log/)")
	key := fs.String("key", env.Getenv("SPICE_LOG_KEY"), "the hub's log verifier key (env SPICE_LOG_KEY); without it the key is fetched from the hub, which proves nothing against that hub")
	dbURL := fs.String("database", "", "also check the database's balances (PostgreSQL URL)")
	state := fs.String("state", "", "file holding the last verified checkpoint")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg := audit.Config{LogURL: *logURL, Key: *key}
	if cfg.LogURL == "" {
		cfg.LogURL = strings.TrimSuffix(*addr, "/") + "/log/"
	}
	if cfg.Key == "" {
		k, err := audit.FetchKey(ctx, *addr, nil)
		if err != nil {
			fmt.Fprintf(env.Stderr, "Error: no -key given and %v\n", err)
			return ExitError
		}
		fmt.Fprintf(env.Stderr, "warning: using the key the hub itself announced (%s); pass -key to audit against a key you trust\n", k)
		cfg.Key = k
	}
	if *state != "" {
		b, err := os.ReadFile(*state)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(env.Stderr, "Error: %v\n", err)
			return ExitError
		}
		cfg.Trusted = b
	}
	if *dbURL != "" {
		st, err := postgres.Open(ctx, *dbURL)
		if err != nil {
			fmt.Fprintf(env.Stderr, "Error: %v\n", err)
			return ExitError
		}
		defer st.Close()
		cfg.DB = st
	}
	rep, err := audit.Verify(ctx, cfg)
	if err != nil {
		fmt.Fprintf(env.Stderr, "FAILED: %v\n", err)
		return ExitError
	}
	if *state != "" {
		if err := os.WriteFile(*state, []byte(rep.Checkpoint), 0o644); err != nil {
			fmt.Fprintf(env.Stderr, "Error: saving state: %v\n", err)
			return ExitError
		}
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
		return ExitOK
	}
	printReport(env.Stdout, rep)
	return ExitOK
}

func printReport(w io.Writer, rep *audit.Report) {
	fmt.Fprintf(w, "log %s: %d entries verified against the signed checkpoint (root %s)\n", rep.Origin, rep.TreeSize, rep.RootHash)
	fmt.Fprintf(w, "%d accounts, %d transfers replayed; total issued %s; balances sum to zero\n", rep.Accounts, rep.Transfers, rep.TotalIssued)
	if rep.DBChecked {
		fmt.Fprintf(w, "database balances equal the replay (%d entries beyond the checkpoint replayed too)\n", rep.DBTail)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "ACCOUNT\tOWNER\tKIND\tBALANCE\tHELD\t\n")
	for _, b := range rep.Balances {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", b.ID, b.Owner, b.Kind, b.Balance, b.Pending)
	}
	tw.Flush()
	fmt.Fprintln(w, "OK")
}

func runBenchLedger(ctx context.Context, args []string, env Env) int {
	var lc bench.LedgerConfig
	var hc bench.HTTPConfig
	fs := flagSet(env, "bench ledger", "", `Starts an ephemeral PostgreSQL (fsync on) and measures, in the same run:
durable ledger transfers/s for batches of 1, 100 and 8190; pgbench's TPC-B-like
TPS with the same client count; their ratio; and the p50/p99 latency of single
transfers over HTTP at a fixed offered rate.`)
	fs.IntVar(&lc.Clients, "clients", 32, "ledger and pgbench clients")
	fs.DurationVar(&lc.Duration, "duration", 10*time.Second, "per measurement")
	fs.IntVar(&lc.Accounts, "accounts", 10000, "accounts transfers move between")
	fs.IntVar(&hc.Rate, "http-rate", 2000, "HTTP transfers offered per second")
	fs.IntVar(&hc.Clients, "http-clients", 64, "HTTP clients")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	hc.Duration = lc.Duration
	cl, err := pgcluster.Start(ctx, pgcluster.DefaultConfig())
	if err != nil {
		fmt.Fprintf(env.Stderr, "Error: %v\n", err)
		return ExitError
	}
	defer cl.Stop()
	return benchIn(env, func(tmp string) error {
		if _, err := bench.Ledger(ctx, cl, lc, env.Stdout); err != nil {
			return err
		}
		hc.TempDir = tmp
		_, err := bench.HTTP(ctx, cl, hc, env.Stdout)
		return err
	})
}

// benchIn runs a benchmark with a temporary directory that is removed
// afterwards, and prints its error, if any.
func benchIn(env Env, run func(tmp string) error) int {
	tmp, err := os.MkdirTemp("", "spice-bench-")
	if err == nil {
		defer os.RemoveAll(tmp)
		err = run(filepath.Clean(tmp))
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "Error: %v\n", err)
		return ExitError
	}
	return ExitOK
}

func runBenchJobs(ctx context.Context, args []string, env Env) int {
	var jc bench.JobsConfig
	fs := flagSet(env, "bench jobs", "", `Starts an ephemeral PostgreSQL, a Nomad dev agent and a hub in front of it,
and measures side by side in one run: submit-to-running latency of a small
exec job straight to Nomad and through the hub's /v1 gateway (admission,
quote, ledger hold included), and jobs registered per second both ways:
until the last registration is answered, and until Nomad has evaluated
every job (the sustained rate, which the 0.80 target is judged on, with
-pin: Nomad on its own CPU both ways, as on a hub whose Nomad servers have
their own machines; with shared CPUs, admission's CPU comes out of Nomad's,
and the ratio is what CPU per job allows, which is printed beside it).`)
	fs.StringVar(&jc.NomadBin, "nomad", env.Getenv("SPICE_NOMAD_BIN"), "the nomad binary (default: env SPICE_NOMAD_BIN, else bin/nomad)")
	fs.IntVar(&jc.Samples, "samples", 12, "latency samples per side")
	fs.IntVar(&jc.Clients, "clients", 32, "concurrent submitters in the throughput runs (enough to load Nomad to capacity)")
	fs.IntVar(&jc.Jobs, "jobs", 3000, "jobs per throughput run (each side runs twice)")
	fs.BoolVar(&jc.Pin, "pin", false, "run Nomad on CPU 0 and the hub, PostgreSQL and the clients on CPU 1 (Linux)")
	fs.StringVar(&jc.CPUProfile, "cpuprofile", "", "write a CPU profile of the hub and clients during the first throughput run through the hub")
	fs.StringVar(&jc.NomadProfiles, "nomadprofiles", "", "write CPU profiles of Nomad's agent during each throughput run into this directory")
	fs.BoolVar(&jc.PGStats, "pgstats", false, "print PostgreSQL's busiest statements during the throughput runs (pg_stat_statements)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if jc.NomadBin == "" {
		jc.NomadBin = "bin/nomad"
	}
	return benchIn(env, func(tmp string) error {
		jc.TempDir = tmp
		pc := pgcluster.DefaultConfig()
		if jc.PGStats {
			pc.ExtraSettings = bench.PGStatsSettings
		}
		cl, err := pgcluster.Start(ctx, pc)
		if err != nil {
			return err
		}
		defer cl.Stop()
		_, err = bench.Jobs(ctx, cl, jc, env.Stdout)
		return err
	})
}

func runBenchAgent(ctx context.Context, args []string, env Env) int {
	var ac bench.AgentConfig
	fs := flagSet(env, "bench agent", "", `Runs 'spice agent run' (host sampling and heartbeats, no Nomad client) as a
child process against a hub's agent API, and prints its resident memory
(steady and peak) and CPU use beside the targets: under 30 MiB and under 1 %
of one core at a 10s interval.`)
	fs.DurationVar(&ac.Interval, "interval", 10*time.Second, "the agent's sampling and heartbeat interval")
	fs.DurationVar(&ac.Duration, "duration", time.Minute, "how long to measure, from the first heartbeat")
	fs.BoolVar(&ac.Recheck, "recheck", true, "then ask for a benchmark re-check and show the memory it takes")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	return benchIn(env, func(tmp string) error {
		ac.TempDir = tmp
		_, err := bench.Agent(ctx, ac, env.Stdout)
		return err
	})
}

func runBenchJoin(ctx context.Context, args []string, env Env) int {
	var jc bench.JoinConfig
	fs := flagSet(env, "bench join", "", `Starts an ephemeral PostgreSQL, the hub's Nomad server and a hub (the dev
stack without its demo machines), and measures side by side in one run the
time from exec to the machine's Nomad node being ready for work: 'spice agent
join' with an enrolment token, against a bare 'nomad agent' client with an
introduction token the hub minted and the configuration the agent writes.`)
	fs.StringVar(&jc.NomadBin, "nomad", env.Getenv("SPICE_NOMAD_BIN"), "the nomad binary (default: env SPICE_NOMAD_BIN, else bin/nomad)")
	fs.IntVar(&jc.Runs, "runs", 3, "joins per side, alternating")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if jc.NomadBin == "" {
		jc.NomadBin = "bin/nomad"
	}
	return benchIn(env, func(tmp string) error {
		jc.TempDir = tmp
		_, err := bench.Join(ctx, jc, env.Stdout)
		return err
	})
}
