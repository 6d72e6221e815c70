package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spiceroute/spiceroute/hub/client"
	"github.com/spiceroute/spiceroute/hub/ledger"
)

// cmd is one run of a built-in command: its flags, the common API flags,
// usage and output helpers. Other packages' commands may use the standard
// flag package any way they like.
type cmd struct {
	env      Env
	name     string // e.g. "account create"
	synopsis string // positional arguments, e.g. "ID"
	help     string // what the command does
	fs       *flag.FlagSet

	addr, token string
	json        bool
}

func newCmd(env Env, name, synopsis, help string) *cmd {
	c := &cmd{env: env, name: name, synopsis: synopsis, help: help}
	c.fs = flag.NewFlagSet("spice "+name, flag.ContinueOnError)
	c.fs.SetOutput(io.Discard)
	c.fs.StringVar(&c.addr, "address", env.Addr, "the hub's address; overrides SPICE_ADDR")
	c.fs.StringVar(&c.token, "token", env.Token, "the API token; overrides SPICE_TOKEN")
	c.fs.BoolVar(&c.json, "json", false, "print JSON instead of a table")
	return c
}

func (c *cmd) usage(w io.Writer) {
	syn := "[options]"
	if c.synopsis != "" {
		syn += " " + c.synopsis
	}
	fmt.Fprintf(w, "Usage: spice %s %s\n\n", c.name, syn)
	for _, line := range strings.Split(strings.TrimSpace(c.help), "\n") {
		fmt.Fprintf(w, "  %s\n", line)
	}
	fmt.Fprintf(w, "\nOptions:\n\n")
	c.fs.VisitAll(func(f *flag.Flag) {
		name, use := flag.UnquoteUsage(f)
		if name != "" {
			fmt.Fprintf(w, "  -%s=<%s>\n", f.Name, name)
		} else {
			fmt.Fprintf(w, "  -%s\n", f.Name)
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.Name != "token" {
			use += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "      %s\n\n", use)
	})
}

// parse parses args, allowing flags after positional arguments (a "--"
// ends flags), and checks there are min to max positional arguments (max
// < 0: no limit). When ok is false the command must return code.
func (c *cmd) parse(args []string, min, max int) (pos []string, code int, ok bool) {
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.usage(c.env.Stdout)
				return nil, ExitOK, false
			}
			fmt.Fprintf(c.env.Stderr, "Error: %v\nRun 'spice %s -h' for usage.\n", err, c.name)
			return nil, ExitError, false
		}
		rest := c.fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	switch {
	case len(pos) < min:
		return nil, c.usageError("missing arguments"), false
	case max >= 0 && len(pos) > max:
		return nil, c.usageError(fmt.Sprintf("unexpected arguments: %s", strings.Join(pos[max:], " "))), false
	}
	return pos, ExitOK, true
}

// usageError prints msg and the usage to stderr and returns ExitUsage.
func (c *cmd) usageError(msg string) int {
	fmt.Fprintf(c.env.Stderr, "Error: %s\n\n", msg)
	c.usage(c.env.Stderr)
	return ExitUsage
}

// fail prints err to stderr and returns ExitError.
func (c *cmd) fail(err error) int {
	fmt.Fprintf(c.env.Stderr, "Error: %v\n", err)
	return ExitError
}

func (c *cmd) failf(format string, args ...any) int {
	return c.fail(fmt.Errorf(format, args...))
}

func (c *cmd) client() *client.Client {
	return client.New(c.addr, c.token, client.WithUserAgent("spice-cli"))
}

// printJSON writes v as indented JSON to stdout.
func (c *cmd) printJSON(v any) int {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(c.env.Stdout, "%s\n", b)
	return ExitOK
}

// table returns an aligned writer on stdout; Flush it.
func (c *cmd) table() *tabwriter.Writer {
	return tabwriter.NewWriter(c.env.Stdout, 0, 8, 2, ' ', 0)
}

// kv prints key/value rows aligned (a vertical table).
func (c *cmd) kv(rows ...[2]string) {
	tw := c.table()
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t= %s\n", r[0], r[1])
	}
	tw.Flush()
}

// idFlag parses an ID given on the command line; what names it in errors.
func parseID(what, s string) (ledger.ID, error) {
	id, err := ledger.ParseID(s)
	if err != nil {
		return id, fmt.Errorf("%s: %q is not an ID (want a UUID)", what, s)
	}
	return id, nil
}

func formatTime(ns int64) string {
	if ns == 0 {
		return "-"
	}
	return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000Z")
}

func transferFlagNames(f ledger.TransferFlags) string {
	var names []string
	for _, x := range []struct {
		f    ledger.TransferFlags
		name string
	}{{ledger.Linked, "linked"}, {ledger.Pending, "pending"}, {ledger.PostPending, "post"}, {ledger.VoidPending, "void"}, {ledger.Expiry, "expiry"}} {
		if f&x.f != 0 {
			names = append(names, x.name)
			f &^= x.f
		}
	}
	if f != 0 {
		names = append(names, fmt.Sprintf("%#x", uint16(f)))
	}
	if len(names) == 0 {
		return "-"
	}
	return strings.Join(names, ",")
}

func accountFlagNames(f ledger.AccountFlags) string {
	var names []string
	if f&ledger.AccountAllowNegative != 0 {
		names = append(names, "allow_negative")
	}
	if f&ledger.AccountClosed != 0 {
		names = append(names, "closed")
	}
	if rest := f &^ (ledger.AccountAllowNegative | ledger.AccountClosed); rest != 0 {
		names = append(names, fmt.Sprintf("%#x", uint16(rest)))
	}
	if len(names) == 0 {
		return "-"
	}
	return strings.Join(names, ",")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
