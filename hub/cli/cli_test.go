package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/api/apitest"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/cli"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const sp = ledger.MicroPerSpice

// result is one run of cli.Main.
type result struct {
	code           int
	stdout, stderr string
}

// spice runs the command line with environment env.
func spice(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(context.Background(), args, &out, &errb, func(k string) string { return env[k] })
	return result{code, out.String(), errb.String()}
}

// ok checks exit code 0 and returns stdout.
func (r result) ok(t *testing.T) string {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails checks the exit code and that stderr mentions each of want.
func (r result) fails(t *testing.T, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
		}
	}
}

func contains(t *testing.T, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("output lacks %q:\n%s", w, s)
		}
	}
}

// row matches a key/value line of a vertical table, whatever the padding.
func row(t *testing.T, s, key, value string) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + ` +=\s` + regexp.QuoteMeta(value) + `$`)
	if !re.MatchString(s) {
		t.Errorf("no row %q = %q in:\n%s", key, value, s)
	}
}

func TestUsage(t *testing.T) {
	env := map[string]string{}
	r := spice(t, env)
	r.fails(t, 2, "Usage: spice <command>", "account create", "transfer proof", "token create", "whoami", "SPICE_ADDR")

	contains(t, spice(t, env, "-h").ok(t), "account list", "transfer batch")
	contains(t, spice(t, env, "help", "transfer").ok(t), "Usage: spice transfer <command>", "transfer void")
	contains(t, spice(t, env, "help", "transfer", "create").ok(t), "Usage: spice transfer create [options]", "-amount=<string>", "-address=<string>", "(default http://127.0.0.1:7070)")

	r = spice(t, env, "account")
	r.fails(t, 2, "account get", "account transfers")
	if strings.Contains(r.stderr, "transfer create") {
		t.Errorf("account usage lists transfer commands:\n%s", r.stderr)
	}
	contains(t, spice(t, env, "account", "-h").ok(t), "account list")
	spice(t, env, "nope").fails(t, 2, `unknown command "nope"`)
	spice(t, env, "account", "nope").fails(t, 2, `unknown command "account nope"`)
	spice(t, env, "account", "get").fails(t, 2, "missing arguments", "Usage: spice account get [options] ID")
	spice(t, env, "account", "get", "a", "b").fails(t, 2, "unexpected arguments: b")
	spice(t, env, "account", "get", "-bogus", "x").fails(t, 1, "flag provided but not defined: -bogus", "spice account get -h")
	spice(t, env, "account", "get", "not-a-uuid").fails(t, 1, `"not-a-uuid" is not an ID`)
	spice(t, env, "transfer", "create", "-from", ledger.NewID().String()).fails(t, 2, "-from, -to and -amount are required")
	spice(t, env, "transfer", "create", "-from", ledger.NewID().String(), "-to", ledger.NewID().String(), "-amount", "1.2345678").
		fails(t, 1, "-amount", "at most 6 decimals")
	spice(t, env, "token", "revoke").fails(t, 2, "either a SECRET or -self")
}

var registered atomic.Int64

func TestRegister(t *testing.T) {
	name := fmt.Sprintf("testcmd%d run", registered.Add(1))
	var gotArgs []string
	var gotEnv cli.Env
	cli.Register(name, "A command from another package", func(ctx context.Context, args []string, env cli.Env) int {
		gotArgs, gotEnv = args, env
		fmt.Fprintln(env.Stdout, "ran")
		return 3
	})
	env := map[string]string{"SPICE_TOKEN": "spice_x", "DATABASE_URL": "postgres://db"}
	r := spice(t, env, append(strings.Fields(name), "-flag", "arg")...)
	if r.code != 3 || r.stdout != "ran\n" {
		t.Fatalf("exit %d, stdout %q", r.code, r.stdout)
	}
	if strings.Join(gotArgs, " ") != "-flag arg" || gotEnv.Token != "spice_x" || gotEnv.Addr != cli.DefaultAddr || gotEnv.Getenv("DATABASE_URL") != "postgres://db" {
		t.Fatalf("args %q, env %+v", gotArgs, gotEnv)
	}
	contains(t, spice(t, env, "-h").ok(t), name, "A command from another package")
	defer func() {
		if recover() == nil {
			t.Error("registering a name twice did not panic")
		}
	}()
	cli.Register(name, "again", func(context.Context, []string, cli.Env) int { return 0 })
}

func TestAccounts(t *testing.T) {
	h := apitest.New(t, api.Config{})
	alice := map[string]string{"SPICE_ADDR": h.URL, "SPICE_TOKEN": h.Token(t, "alice", auth.RoleRenter)}
	bobToken := h.Token(t, "bob", auth.RoleContributor)

	id := ledger.NewID()
	out := spice(t, alice, "account", "create", "-kind", "renter", "-id", id.String()).ok(t)
	contains(t, out, fmt.Sprintf("Account %s created", id))
	row(t, out, "Owner", "alice")
	row(t, out, "Balance", "0.000000 SP")
	contains(t, spice(t, alice, "account", "create", "-kind", "renter", "-id", id.String()).ok(t), "already existed")

	r := spice(t, alice, "account", "create", "-json")
	r.ok(t)
	var res ledger.AccountResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("-json output: %v\n%s", err, r.stdout)
	}
	if !strings.Contains(r.stderr, "New account ID "+res.Account.ID.String()) || res.Account.Kind != ledger.KindRenter {
		t.Fatalf("generated ID not printed: %q, %+v", r.stderr, res)
	}
	spice(t, alice, "account", "create", "-kind", "issuance", "-allow-negative").fails(t, 1, "forbidden")
	spice(t, alice, "account", "create", "-kind", "bank").fails(t, 1, `-kind: unknown account kind "bank"`)

	h.Issue(t, id, 12_500_000)
	out = spice(t, alice, "account", "get", id.String()).ok(t)
	row(t, out, "Balance", "12.500000 SP")
	row(t, out, "Available", "12.500000 SP")
	row(t, out, "Kind", "renter")

	var a map[string]any
	if err := json.Unmarshal([]byte(spice(t, alice, "account", "get", id.String(), "-json").ok(t)), &a); err != nil {
		t.Fatal(err)
	}
	if a["balance"] != 12_500_000.0 || a["id"] != id.String() {
		t.Fatalf("account -json: %v", a)
	}

	out = spice(t, alice, "account", "list").ok(t)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !regexp.MustCompile(`^ID +Owner +Kind +Balance +Available`).MatchString(lines[0]) {
		t.Fatalf("account list:\n%s", out)
	}
	// Columns are aligned: every row has the balance where the header has it.
	col := strings.Index(lines[0], "Balance")
	for _, l := range lines[1:] {
		if !regexp.MustCompile(`^\d`).MatchString(l[col:]) {
			t.Errorf("misaligned row %q (Balance at %d)", l, col)
		}
	}
	contains(t, out, id.String(), "12.500000 SP")
	spice(t, alice, "account", "list", "-owner", "bob").fails(t, 1, "forbidden")

	// Another's account does not exist for alice.
	bo := ledger.NewID()
	spice(t, alice, "account", "create", "-kind", "contributor", "-id", bo.String(), "-token", bobToken).ok(t)
	spice(t, alice, "account", "get", bo.String()).fails(t, 1, "account_not_found")

	t.Run("FlagsOverrideEnv", func(t *testing.T) {
		env := map[string]string{"SPICE_ADDR": "http://127.0.0.1:1", "SPICE_TOKEN": "spice_wrong"}
		contains(t, spice(t, env, "whoami", "-address", h.URL, "-token", bobToken).ok(t), "bob (contributor)")
		spice(t, env, "whoami").fails(t, 1, "127.0.0.1:1")
		spice(t, map[string]string{"SPICE_ADDR": h.URL, "SPICE_TOKEN": "spice_wrong"}, "whoami").fails(t, 1, "unauthenticated")
	})
	h.CheckBooks(t)
}

func TestTransfers(t *testing.T) {
	h := apitest.New(t, api.Config{})
	aliceToken, bobToken := h.Token(t, "alice", auth.RoleRenter), h.Token(t, "bob", auth.RoleContributor)
	alice := map[string]string{"SPICE_ADDR": h.URL, "SPICE_TOKEN": aliceToken}
	bob := map[string]string{"SPICE_ADDR": h.URL, "SPICE_TOKEN": bobToken}
	ali, bo := ledger.NewID(), ledger.NewID()
	spice(t, alice, "account", "create", "-id", ali.String()).ok(t)
	spice(t, bob, "account", "create", "-kind", "contributor", "-id", bo.String()).ok(t)
	h.Issue(t, ali, 20*sp)

	tid := ledger.NewID()
	args := []string{"transfer", "create", "-from", ali.String(), "-to", bo.String(), "-amount", "2.5", "-id", tid.String(), "-user-data", "job 7"}
	out := spice(t, alice, args...).ok(t)
	contains(t, out, fmt.Sprintf("Transfer %s committed", tid))
	row(t, out, "Amount", "2.500000 SP")
	row(t, out, "User data", "job 7")
	contains(t, spice(t, alice, args...).ok(t), "already committed")
	args[7] = "2.6" // same ID, other amount
	spice(t, alice, args...).fails(t, 1, "id_conflict")
	spice(t, alice, "transfer", "create", "-from", ali.String(), "-to", bo.String(), "-amount", "100").fails(t, 1, "insufficient_funds", "17.500000 SP")
	spice(t, bob, "transfer", "create", "-from", ali.String(), "-to", bo.String(), "-amount", "1").fails(t, 1, "forbidden")

	var got ledger.Transfer
	if err := json.Unmarshal([]byte(spice(t, bob, "transfer", "get", tid.String(), "-json").ok(t)), &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != tid || got.Amount != 2_500_000 || got.LogIndex == 0 {
		t.Fatalf("transfer get -json: %+v", got)
	}

	t.Run("Holds", func(t *testing.T) {
		hold := ledger.NewID()
		out := spice(t, alice, "transfer", "create", "-from", ali.String(), "-to", bo.String(), "-amount", "5", "-pending", "-timeout", "1h", "-id", hold.String()).ok(t)
		row(t, out, "Flags", "pending")
		contains(t, out, "(timeout 3600s)")
		spice(t, alice, "transfer", "create", "-from", ali.String(), "-to", bo.String(), "-amount", "5", "-timeout", "1m").fails(t, 1, "only for holds")
		spice(t, alice, "transfer", "post", hold.String()).fails(t, 1, "forbidden")
		out = spice(t, bob, "transfer", "post", hold.String(), "-amount", "1").ok(t)
		row(t, out, "Amount", "1.000000 SP")
		row(t, out, "Flags", "post")
		row(t, out, "Hold", hold.String())
		spice(t, bob, "transfer", "void", hold.String()).fails(t, 1, "hold_already_posted")

		hold2 := ledger.NewID()
		spice(t, alice, "transfer", "create", "-from", ali.String(), "-to", bo.String(), "-amount", "3", "-pending", "-id", hold2.String()).ok(t)
		row(t, spice(t, bob, "transfer", "void", hold2.String()).ok(t), "Flags", "void")
		out = spice(t, alice, "account", "get", ali.String()).ok(t)
		row(t, out, "Balance", "16.500000 SP")
		row(t, out, "Available", "16.500000 SP")

		out = spice(t, alice, "account", "transfers", ali.String(), "-limit", "3").ok(t)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[1], "void") || !strings.Contains(lines[2], "-3.000000 SP") {
			t.Fatalf("account transfers:\n%s", out)
		}
	})

	t.Run("Batch", func(t *testing.T) {
		dir := t.TempDir()
		a1, a2, a3 := ledger.NewID(), ledger.NewID(), ledger.NewID()
		bad := fmt.Sprintf(`{"transfers":[
			{"id":%q,"debit_account_id":%q,"credit_account_id":%q,"amount":1000000,"flags":1},
			{"id":%q,"debit_account_id":%q,"credit_account_id":%q,"amount":99000000}]}`, a1, ali, bo, a2, ali, bo)
		writeFile(t, dir, "bad.json", bad)
		r := spice(t, alice, "transfer", "batch", filepath.Join(dir, "bad.json"))
		r.fails(t, 1, "2 of 2 transfers were rejected")
		contains(t, r.stdout, "linked_event_failed", "insufficient_funds", "0 of 2 transfers committed")

		good := fmt.Sprintf(`{"transfers":[
			{"id":%q,"debit_account_id":%q,"credit_account_id":%q,"amount":1000000,"flags":1},
			{"id":%q,"debit_account_id":%q,"credit_account_id":%q,"amount":500000}]}`, a1, ali, bo, a3, ali, bo)
		writeFile(t, dir, "good.json", good)
		contains(t, spice(t, alice, "transfer", "batch", filepath.Join(dir, "good.json")).ok(t), "2 of 2 transfers committed")
		var res api.TransferResults
		if err := json.Unmarshal([]byte(spice(t, alice, "transfer", "batch", "-json", filepath.Join(dir, "good.json")).ok(t)), &res); err != nil {
			t.Fatal(err)
		}
		if len(res.Results) != 2 || !res.Results[0].Existed || !res.Results[1].Existed {
			t.Fatalf("resubmitted batch: %+v", res.Results)
		}

		writeFile(t, dir, "float.json", fmt.Sprintf(`{"id":%q,"debit_account_id":%q,"credit_account_id":%q,"amount":1.5}`, a1, ali, bo))
		spice(t, alice, "transfer", "batch", filepath.Join(dir, "float.json")).fails(t, 1, "float.json: amount: want an integer of µSP")
		spice(t, alice, "transfer", "batch", filepath.Join(dir, "missing.json")).fails(t, 1, "no such file")
	})

	t.Run("Proof", func(t *testing.T) {
		h.WaitCheckpoint(t, h.LogSize(t))
		out := spice(t, alice, "transfer", "proof", tid.String()).ok(t)
		row(t, out, "Transfer", tid.String())
		row(t, out, "Verified", "yes: signed checkpoint, log entry and inclusion proof")
		contains(t, out, "Checkpoint:\n    "+apitest.Origin+"\n")
		var p struct {
			api.InclusionProof
			Verified bool `json:"verified"`
		}
		if err := json.Unmarshal([]byte(spice(t, alice, "transfer", "proof", tid.String(), "-json").ok(t)), &p); err != nil {
			t.Fatal(err)
		}
		if !p.Verified || p.TransferID != tid || len(p.Proof) == 0 {
			t.Fatalf("proof -json: %+v", p)
		}
	})

	t.Run("Unreachable", func(t *testing.T) {
		env := map[string]string{"SPICE_ADDR": "http://127.0.0.1:1", "SPICE_TOKEN": aliceToken}
		r := spice(t, env, "transfer", "create", "-from", ali.String(), "-to", bo.String(), "-amount", "1")
		r.fails(t, 1, "New transfer ID", "may or may not have been committed", "same -id")
	})
	h.CheckBooks(t)
}

func TestTokens(t *testing.T) {
	h := apitest.New(t, api.Config{})
	op := map[string]string{"SPICE_ADDR": h.URL, "SPICE_TOKEN": h.Operator}
	out := spice(t, op, "token", "create", "-principal", "carol", "-role", "renter", "-name", "laptop").ok(t)
	row(t, out, "Principal", "carol")
	m := regexp.MustCompile(`(?m)^Secret +=\s(spice_\S+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no secret in:\n%s", out)
	}
	carol := map[string]string{"SPICE_ADDR": h.URL, "SPICE_TOKEN": m[1]}
	if got := spice(t, carol, "whoami").ok(t); got != "carol (renter)\n" {
		t.Fatalf("whoami = %q", got)
	}
	var p auth.Principal
	if err := json.Unmarshal([]byte(spice(t, carol, "whoami", "-json").ok(t)), &p); err != nil || p.Name != "carol" {
		t.Fatalf("whoami -json: %+v, %v", p, err)
	}
	spice(t, carol, "token", "create", "-principal", "dave", "-role", "renter").fails(t, 1, "forbidden")
	spice(t, op, "token", "create", "-principal", "dave", "-role", "king").fails(t, 1, "-role")
	contains(t, spice(t, op, "token", "revoke", m[1]).ok(t), "Token revoked")
	spice(t, carol, "whoami").fails(t, 1, "unauthenticated")
	spice(t, op, "token", "revoke", m[1]).fails(t, 1, "not_found")
}

func writeFile(t *testing.T, dir, name, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
