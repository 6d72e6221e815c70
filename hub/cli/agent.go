package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spiceroute/spiceroute/agent"
	"github.com/spiceroute/spiceroute/agent/agentapi"
	"github.com/spiceroute/spiceroute/agent/energy"
	"github.com/spiceroute/spiceroute/agent/hostmetrics"
	"github.com/spiceroute/spiceroute/agent/nomadclient"
	"github.com/spiceroute/spiceroute/agent/windows"
)

// The contributor agent's commands.
func init() {
	Register("agent join", "Join this machine to a hub as a contributor, then run the agent", runAgentJoin)
	Register("agent run", "Run the contributor agent of a machine that has joined (Nomad client, heartbeats)", runAgentRun)
	Register("agent floor", "Propose a price floor from the machine's electricity cost", runAgentFloor)
}

// parseInterleaved parses flags that may come before or after positional
// arguments ("--" ends flags) and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// agentFlags are the flags `agent join` and `agent run` share.
type agentFlags struct {
	stateDir    string
	nomadBin    string
	nomadPort   int
	interval    time.Duration
	manageNomad bool
}

func (f *agentFlags) register(fs *flag.FlagSet, env Env) {
	def := env.Getenv("SPICE_AGENT_STATE_DIR")
	if def == "" {
		def = agent.DefaultStateDir
	}
	fs.StringVar(&f.stateDir, "state-dir", def, "the agent's state directory (env SPICE_AGENT_STATE_DIR)")
	nomad := env.Getenv("SPICE_NOMAD_BIN")
	if nomad == "" {
		nomad = "nomad"
	}
	fs.StringVar(&f.nomadBin, "nomad", nomad, "the nomad binary (env SPICE_NOMAD_BIN)")
	fs.IntVar(&f.nomadPort, "nomad-http-port", nomadclient.DefaultHTTPPort, "the Nomad client's HTTP port, on 127.0.0.1")
	fs.DurationVar(&f.interval, "interval", 10*time.Second, "how often to sample the host and send a heartbeat")
	fs.BoolVar(&f.manageNomad, "manage-nomad", true, "start and supervise the Nomad client (false: it runs elsewhere, e.g. under systemd)")
}

func agentLogger(env Env) *slog.Logger {
	return slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func fail(env Env, err error) int {
	fmt.Fprintf(env.Stderr, "Error: %v\n", err)
	return ExitError
}

func runAgentJoin(ctx context.Context, args []string, env Env) int {
	var af agentFlags
	fs := flagSet(env, "agent join", " <hub-url>", `Registers this machine with the hub at <hub-url> using a single-use enrolment
token from the hub's operator, then writes the Nomad client's configuration
and runs the agent (like 'spice agent run') until interrupted.

The price floor is either given (-floor, SP per core-hour) or proposed from
the electricity price (-kwh-price with -rate or -eur-per-sp; see 'spice agent
floor'). With -print-config the agent prints the Nomad client configuration
and systemd units instead of running, for operators who run Nomad themselves.`)
	af.register(fs, env)
	token := fs.String("token", "", "the enrolment token (required)")
	region := fs.String("region", "", "the region this machine is in, e.g. eu-west (required)")
	floor := fs.String("floor", "", "price floor, SP per core-hour (e.g. 0.03)")
	watts := fs.Int64("watts", 0, "the machine's draw under load in W (default: estimated from the CPU count)")
	kwh := fs.String("kwh-price", "", "electricity price, EUR per kWh (e.g. 0.30)")
	rate := fs.String("rate", "", "SP per EUR, to turn the power cost into Spice")
	eurPerSP := fs.String("eur-per-sp", "", "EUR per SP (instead of -rate)")
	margin := fs.String("margin", "1.25", "floor = power cost × margin")
	resCPU := fs.Int64("reserve-cpu", 0, "CPU kept for the owner, MHz")
	resMem := fs.Int64("reserve-memory", 0, "memory kept for the owner, MB")
	window := fs.String("window", "", `availability windows, e.g. "22:00-07:00" or "mon-fri 18:00-08:00;sat,sun 00:00-24:00" (default: always)`)
	tz := fs.String("tz", "", "the windows' time zone, e.g. Europe/Berlin (default: the machine's)")
	printConfig := fs.Bool("print-config", false, "print the Nomad client configuration and systemd units instead of running")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if len(pos) != 1 || *token == "" || *region == "" {
		fmt.Fprintln(env.Stderr, "Error: want <hub-url>, -token and -region")
		fs.Usage()
		return ExitUsage
	}
	hubURL := pos[0]
	sched, err := parseWindows(*window, *tz)
	if err != nil {
		return fail(env, err)
	}
	offer := agentapi.Offer{Region: *region, ReservedCPUMHz: *resCPU, ReservedMemoryMB: *resMem}
	switch {
	case *floor != "":
		if offer.FloorCPU, err = parseSP(*floor); err != nil {
			return fail(env, fmt.Errorf("-floor: %w", err))
		}
	case *kwh != "":
		est, err := proposeFloor(ctx, *watts, 0, *kwh, *rate, *eurPerSP, *margin)
		if err != nil {
			return fail(env, err)
		}
		est.Explain(env.Stdout)
		offer.FloorCPU = est.FloorCPU
	default:
		return fail(env, errors.New("give a price floor (-floor SP per core-hour) or the electricity price (-kwh-price with -rate or -eur-per-sp)"))
	}

	cfg := agent.DefaultConfig()
	cfg.StateDir, cfg.NomadBinary, cfg.NomadHTTPPort, cfg.SampleInterval = af.stateDir, af.nomadBin, af.nomadPort, af.interval
	cfg.Offer, cfg.Windows, cfg.Logger = offer, sched, agentLogger(env)
	cfg.ManageNomad = af.manageNomad && !*printConfig
	if cfg.ManageNomad {
		// Fail before burning the enrolment token.
		if _, err := exec.LookPath(cfg.NomadBinary); err != nil {
			return fail(env, fmt.Errorf("nomad binary %q: %w (pass -nomad, or -print-config to run Nomad yourself)", cfg.NomadBinary, err))
		}
	}
	settings := agent.Settings{Windows: sched.String(), TimeZone: *tz, NomadBinary: cfg.NomadBinary, NomadHTTPPort: af.nomadPort, ManageNomad: cfg.ManageNomad}
	st, err := agent.Join(ctx, cfg, hubURL, *token, settings)
	if err != nil {
		return fail(env, err)
	}
	fmt.Fprintf(env.Stderr, "Joined %s as machine %s (Nomad node %s, pool %s); earnings go to account %s.\n",
		hubURL, st.Join.MachineID, st.Join.Nomad.NodeName, st.Join.Nomad.NodePool, st.Join.AccountID)
	if *printConfig {
		return printNomadConfig(env, st, af.stateDir, af.nomadPort, af.nomadBin)
	}
	return runJoinedAgent(ctx, env, cfg)
}

func printNomadConfig(env Env, st *agent.State, stateDir string, port int, nomadBin string) int {
	files, err := agent.WriteNomadConfig(st, stateDir, port)
	if err != nil {
		return fail(env, err)
	}
	hcl, err := os.ReadFile(files.ConfigPath)
	if err != nil {
		return fail(env, err)
	}
	if p, err := exec.LookPath(nomadBin); err == nil {
		nomadBin = p
	}
	spice, _ := os.Executable()
	abs, _ := filepath.Abs(stateDir)
	w := env.Stdout
	fmt.Fprintf(w, "# --- %s (Nomad client configuration) ---\n%s\n", files.ConfigPath, hcl)
	fmt.Fprintf(w, "# --- %s holds %s (mode 0600); the client needs it for its first registration only ---\n\n",
		files.EnvPath, nomadclient.IntroTokenEnv)
	u := nomadclient.Unit{NomadBinary: nomadBin, ConfigPath: files.ConfigPath, EnvFile: files.EnvPath, NodeName: st.Join.Nomad.NodeName}
	fmt.Fprintf(w, "# --- /etc/systemd/system/nomad-spiceroute.service ---\n%s\n", u.NomadUnit())
	fmt.Fprintf(w, "# --- /etc/systemd/system/spiceroute-agent.service (heartbeats, metrics, availability) ---\n%s\n",
		nomadclient.AgentUnit(spice, abs))
	fmt.Fprintf(w, "# Then: systemctl daemon-reload && systemctl enable --now nomad-spiceroute spiceroute-agent\n")
	return ExitOK
}

func runAgentRun(ctx context.Context, args []string, env Env) int {
	var af agentFlags
	fs := flagSet(env, "agent run", "", `Runs the agent of a machine that has joined a hub ('spice agent join'): starts
and supervises the Nomad client (unless -manage-nomad=false) and sends the hub
a heartbeat with host metrics and availability every -interval, until
interrupted. Settings given at join are kept; flags given here override them.`)
	af.register(fs, env)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	st, _, err := agent.LoadState(af.stateDir)
	if err != nil {
		return fail(env, err)
	}
	s := st.Settings
	cfg := agent.DefaultConfig()
	cfg.StateDir, cfg.SampleInterval, cfg.Logger = af.stateDir, af.interval, agentLogger(env)
	cfg.NomadBinary, cfg.NomadHTTPPort, cfg.ManageNomad = s.NomadBinary, s.NomadHTTPPort, s.ManageNomad
	if set["nomad"] || cfg.NomadBinary == "" {
		cfg.NomadBinary = af.nomadBin
	}
	if set["nomad-http-port"] || cfg.NomadHTTPPort == 0 {
		cfg.NomadHTTPPort = af.nomadPort
	}
	if set["manage-nomad"] {
		cfg.ManageNomad = af.manageNomad
	}
	if cfg.Windows, err = parseWindows(s.Windows, s.TimeZone); err != nil {
		return fail(env, fmt.Errorf("windows in the state: %w", err))
	}
	return runJoinedAgent(ctx, env, cfg)
}

// runJoinedAgent runs the agent until ctx ends.
func runJoinedAgent(ctx context.Context, env Env, cfg agent.Config) int {
	a, err := agent.New(cfg)
	if err != nil {
		return fail(env, err)
	}
	cfg.Logger.Info("agent running", "hub", a.State().HubURL, "machine", a.State().Join.MachineID,
		"interval", cfg.SampleInterval, "manage_nomad", cfg.ManageNomad, "windows", cfg.Windows.String())
	runErr := a.Run(ctx)
	closeErr := a.Close()
	if err := errors.Join(runErr, closeErr); err != nil {
		return fail(env, err)
	}
	return ExitOK
}

func runAgentFloor(ctx context.Context, args []string, env Env) int {
	fs := flagSet(env, "agent floor", "", `Proposes a price floor (SP per core-hour) so that renting this machine out pays
more than the electricity it uses:

  floor = ⌈ watts / cores / 1000 × EUR per kWh × SP per EUR × 10^6 × margin ⌉ µSP

Without -watts the draw is estimated as 30 W + 10 W per CPU.`)
	watts := fs.Int64("watts", 0, "the machine's draw under load in W (default: estimated from the CPU count)")
	cores := fs.Int("cores", 0, "logical CPUs (default: this machine's)")
	kwh := fs.String("kwh-price", "", "electricity price, EUR per kWh (required)")
	rate := fs.String("rate", "", "SP per EUR")
	eurPerSP := fs.String("eur-per-sp", "", "EUR per SP (instead of -rate)")
	margin := fs.String("margin", "1.25", "floor = power cost × margin")
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *kwh == "" {
		fmt.Fprintln(env.Stderr, "Error: -kwh-price is required")
		fs.Usage()
		return ExitUsage
	}
	est, err := proposeFloor(ctx, *watts, *cores, *kwh, *rate, *eurPerSP, *margin)
	if err != nil {
		return fail(env, err)
	}
	if *asJSON {
		fmt.Fprintf(env.Stdout, `{"watts":%d,"watts_estimated":%t,"cores":%d,"power_cost_core_hour":%d,"floor_cpu_core_hour":%d}`+"\n",
			est.Watts, est.WattsEstimated, est.Cores, est.PowerCost, est.FloorCPU)
		return ExitOK
	}
	est.Explain(env.Stdout)
	fmt.Fprintf(env.Stdout, "\nJoin with: -floor %s\n", strings.TrimSuffix(energy.FormatMicroSP(est.FloorCPU), " SP"))
	return ExitOK
}

// proposeFloor runs energy.Propose with the flags' values; cores 0 means
// this machine's.
func proposeFloor(ctx context.Context, watts int64, cores int, kwh, rate, eurPerSP, margin string) (energy.Estimate, error) {
	in := energy.Input{Watts: watts, Cores: cores}
	var err error
	if in.KWhPrice, err = energy.ParseDecimal(kwh); err != nil {
		return energy.Estimate{}, fmt.Errorf("-kwh-price: %w", err)
	}
	switch {
	case rate != "" && eurPerSP != "":
		return energy.Estimate{}, errors.New("give -rate or -eur-per-sp, not both")
	case rate != "":
		if in.SPPerEUR, err = energy.ParseDecimal(rate); err != nil {
			return energy.Estimate{}, fmt.Errorf("-rate: %w", err)
		}
	case eurPerSP != "":
		r, err := energy.ParseDecimal(eurPerSP)
		if err != nil {
			return energy.Estimate{}, fmt.Errorf("-eur-per-sp: %w", err)
		}
		in.SPPerEUR = new(big.Rat).Inv(r)
	default:
		return energy.Estimate{}, errors.New("give the exchange rate: -rate (SP per EUR) or -eur-per-sp")
	}
	if in.Margin, err = energy.ParseDecimal(margin); err != nil {
		return energy.Estimate{}, fmt.Errorf("-margin: %w", err)
	}
	if in.Cores == 0 {
		m, err := hostmetrics.Machine(ctx, "/")
		if err != nil {
			return energy.Estimate{}, err
		}
		in.Cores = m.CPUCores
	}
	return energy.Propose(in)
}

// parseSP parses an amount of SP ("0.03") into µSP exactly; more than six
// decimals is an error.
func parseSP(s string) (int64, error) {
	r, err := energy.ParseDecimal(s)
	if err != nil {
		return 0, err
	}
	r.Mul(r, big.NewRat(energy.MicroPerSP, 1))
	if !r.IsInt() || !r.Num().IsInt64() {
		return 0, fmt.Errorf("%q: at most 6 decimals (1 µSP)", s)
	}
	return r.Num().Int64(), nil
}

// parseWindows parses an availability spec in a time zone ("" local).
func parseWindows(spec, tz string) (windows.Schedule, error) {
	loc := time.Local
	if tz != "" {
		var err error
		if loc, err = time.LoadLocation(tz); err != nil {
			return windows.Schedule{}, fmt.Errorf("-tz: %w", err)
		}
	}
	return windows.Parse(spec, loc)
}
