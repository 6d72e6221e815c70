// Package cli is the `spice` command line. Main dispatches to commands by
// name; commands are registered with Register, by this package (account,
// transfer, token, whoami) and by others (hub, dev, ledger verify, ...).
//
// Conventions follow Nomad's CLI: the hub's address and the API token come
// from SPICE_ADDR (default http://127.0.0.1:7070) and SPICE_TOKEN, and the
// -address and -token flags of every API command override them; -json
// prints the API's JSON instead of tables; amounts are shown in SP.
//
// Exit codes: 0 success; 1 an error (a rejected request, a bad flag or
// value, an unreachable hub); 2 wrong usage (unknown command, missing or
// extra arguments, a required flag missing), with the usage printed.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
)

// DefaultAddr is the hub address when neither SPICE_ADDR nor -address is set.
const DefaultAddr = "http://127.0.0.1:7070"

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// Env is what Main passes to every command. Commands read the environment
// only through Getenv, never os.Getenv, so tests can run them in-process.
type Env struct {
	Stdin  io.Reader // os.Stdin in the binary
	Stdout io.Writer
	Stderr io.Writer
	// Getenv is Main's environment (os.Getenv in the binary). Never nil.
	Getenv func(string) string
	// Addr is SPICE_ADDR, or DefaultAddr.
	Addr string
	// Token is SPICE_TOKEN.
	Token string
}

// RunFunc runs a command with the arguments after its name (flags
// included). It returns the exit code: ExitOK, ExitError or ExitUsage.
type RunFunc func(ctx context.Context, args []string, env Env) int

type command struct {
	name    string // words separated by one space, e.g. "ledger verify"
	summary string // one line, no final period
	run     RunFunc
}

var registry struct {
	sync.RWMutex
	m map[string]*command
}

// Register adds a command. name is one or more words ("hub", "ledger
// verify"): `spice ledger verify -x y` calls run(ctx, ["-x", "y"], env),
// choosing the longest registered name that the arguments start with.
// summary is one line for the usage listings. Register panics on an empty or
// duplicate name; call it before Main (from main or an init function).
func Register(name, summary string, run RunFunc) {
	name = strings.Join(strings.Fields(name), " ")
	if name == "" || run == nil {
		panic("cli: Register needs a name and a run function")
	}
	registry.Lock()
	defer registry.Unlock()
	if registry.m == nil {
		registry.m = make(map[string]*command)
	}
	if _, dup := registry.m[name]; dup {
		panic("cli: command registered twice: " + name)
	}
	registry.m[name] = &command{name: name, summary: summary, run: run}
}

// commands returns the registered commands sorted by name.
func commands() []*command {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]*command, 0, len(registry.m))
	for _, c := range registry.m {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// find returns the command with the longest name that args start with, and
// the remaining arguments.
func find(args []string) (*command, []string) {
	registry.RLock()
	defer registry.RUnlock()
	for n := len(args); n > 0; n-- {
		if c, ok := registry.m[strings.Join(args[:n], " ")]; ok {
			return c, args[n:]
		}
	}
	return nil, args
}

// group returns the commands whose names start with the words prefix.
func group(prefix []string) []*command {
	var out []*command
	for _, c := range commands() {
		words := strings.Fields(c.name)
		if len(words) > len(prefix) && slices.Equal(words[:len(prefix)], prefix) {
			out = append(out, c)
		}
	}
	return out
}

// Main runs the spice command line with args (without the program name)
// and returns the exit code. env is the process environment (os.Getenv);
// Main is the only reader of it.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string) int {
	if env == nil {
		env = func(string) string { return "" }
	}
	e := Env{Stdin: os.Stdin, Stdout: stdout, Stderr: stderr, Getenv: env, Addr: env("SPICE_ADDR"), Token: env("SPICE_TOKEN")}
	if e.Addr == "" {
		e.Addr = DefaultAddr
	}
	if len(args) == 0 {
		usage(stderr, nil)
		return ExitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(stdout, nil)
		return ExitOK
	case "help":
		if len(args) == 1 {
			usage(stdout, nil)
			return ExitOK
		}
		if c, rest := find(args[1:]); c != nil && len(rest) == 0 {
			return c.run(ctx, []string{"-h"}, e)
		}
		if g := group(args[1:]); len(g) > 0 {
			usage(stdout, args[1:])
			return ExitOK
		}
		fmt.Fprintf(stderr, "Error: unknown command %q\n\n", strings.Join(args[1:], " "))
		usage(stderr, nil)
		return ExitUsage
	}
	c, rest := find(args)
	if c == nil {
		// A group name alone ("spice account") or with -h lists its commands.
		var words []string
		for _, a := range args {
			if strings.HasPrefix(a, "-") {
				break
			}
			words = append(words, a)
		}
		if g := group(words); len(g) > 0 && len(words) > 0 {
			if len(args) > len(words) && isHelp(args[len(words)]) {
				usage(stdout, words)
				return ExitOK
			}
			if len(args) > len(words) {
				fmt.Fprintf(stderr, "Error: unknown command %q\n\n", strings.Join(args, " "))
			}
			usage(stderr, words)
			return ExitUsage
		}
		fmt.Fprintf(stderr, "Error: unknown command %q\n\n", strings.Join(words, " "))
		usage(stderr, nil)
		return ExitUsage
	}
	return c.run(ctx, rest, e)
}

func isHelp(a string) bool { return a == "-h" || a == "-help" || a == "--help" }

// usage lists the commands under prefix (all when empty).
func usage(w io.Writer, prefix []string) {
	cmds := commands()
	title := "spice"
	if len(prefix) > 0 {
		cmds = group(prefix)
		title += " " + strings.Join(prefix, " ")
	}
	fmt.Fprintf(w, "Usage: %s <command> [options] [args]\n\n", title)
	if len(prefix) == 0 {
		fmt.Fprintf(w, "SpiceRoute's command line: run a hub, manage accounts and move Spice.\n\n")
	}
	fmt.Fprintf(w, "Commands:\n")
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	for _, c := range cmds {
		fmt.Fprintf(tw, "    %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nRun '%s <command> -h' for a command's options.\n", title)
	if len(prefix) == 0 {
		fmt.Fprintf(w, "\nEnvironment:\n    SPICE_ADDR    the hub's address (default %s)\n    SPICE_TOKEN   the API token\n", DefaultAddr)
	}
}
