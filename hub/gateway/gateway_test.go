package gateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/labstack/echo/v4"
	"github.com/spiceroute/spiceroute/hub/admission"
	hubapi "github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/api/apitest"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/gateway"
	"github.com/spiceroute/spiceroute/hub/jobs"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/postgres/pgtest"
	"github.com/spiceroute/spiceroute/hub/settle"
	"github.com/spiceroute/spiceroute/scheduler/nomad"
	"github.com/spiceroute/spiceroute/scheduler/nomadtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testMaxWait caps blocking queries in the tests' gateway (20s in the hub).
const testMaxWait = 2 * time.Second

// env is a hub as `spice hub` wires it: the real API on PostgreSQL with the
// gateway mounted at /v1/*, admission on the real ledger, and a real Nomad
// agent whose client is a contributor in the hub's node pool.
type env struct {
	t     *testing.T
	hub   *apitest.Hub
	nomad *nomadtest.Server
	sched *nomad.Scheduler
	jobs  *jobs.Service
	bin   string // the nomad CLI
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, hubapi.Config{})
}

// newEnvWith is newEnv with the API configured by apiCfg.
func newEnvWith(t *testing.T, apiCfg hubapi.Config) *env {
	t.Helper()
	ctx := context.Background()
	bin := nomadBinary(t)
	srv := nomadtest.NewTestServer(t, nomadtest.WithContributor(ledger.NewID().String()))
	sched, err := nomad.New(nomad.Config{Address: srv.Addr, Token: srv.ManagementToken})
	if err != nil {
		t.Fatal(err)
	}
	if err := sched.EnsureNodePool(ctx); err != nil {
		t.Fatal(err)
	}
	h := apitest.New(t, apiCfg)
	policy, err := admission.LoadPolicy("../../policies/admission.hcl")
	if err != nil {
		t.Fatal(err)
	}
	acc := settle.Accounts{Escrow: ledger.NewID(), Commission: ledger.NewID()}
	e := &env{t: t, hub: h, nomad: srv, sched: sched, bin: bin}
	e.accounts(ledger.Account{ID: acc.Escrow, Owner: "hub", Kind: ledger.KindEscrow},
		ledger.Account{ID: acc.Commission, Owner: "hub", Kind: ledger.KindHubCommission})
	svc := &jobs.Service{Sched: sched, Ledger: h.Ledger, Prices: h.Store, Policy: policy, Store: h.Store,
		Accounts: jobs.Accounts{Accounts: acc, Owned: h.Store.AccountsByOwner}}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("SPICE_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e.jobs = svc
	gw, err := gateway.New(gateway.Config{NomadAddr: srv.Addr, NomadToken: srv.ManagementToken, Namespace: sched.Namespace, MaxWait: testMaxWait}, svc, logger)
	if err != nil {
		t.Fatal(err)
	}
	// Exactly as the hub mounts it.
	h.API.Echo().Any("/v1/*", echo.WrapHandler(gw))
	return e
}

// nomadBinary is the nomad executable the tests run as the CLI: the one
// nomadtest runs as the agent.
func nomadBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv(nomadtest.BinEnv)
	if bin == "" {
		var err error
		if bin, err = filepath.Abs("../../bin/nomad"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no nomad CLI at %s (%v): run `make tools`, or set %s", bin, err, nomadtest.BinEnv)
	}
	return bin
}

func (e *env) accounts(as ...ledger.Account) {
	e.t.Helper()
	res, err := e.hub.Ledger.CreateAccounts(context.Background(), ledger.System, as)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			e.t.Fatal(r.Err)
		}
	}
}

// renter creates a renter with a funded account and an API token.
func (e *env) renter(name string, funds ledger.Amount) (token string, account ledger.ID) {
	e.t.Helper()
	account = ledger.NewID()
	e.accounts(ledger.Account{ID: account, Owner: name, Kind: ledger.KindRenter})
	e.hub.Issue(e.t, account, funds)
	return e.hub.Token(e.t, name, auth.RoleRenter), account
}

// cli runs the stock nomad CLI against the hub with a SpiceRoute token,
// from the repository's root, and returns its combined output and exit
// code. It sees no NOMAD_* variable but these.
func (e *env) cli(token string, args ...string) (string, int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Dir = "../.."
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NOMAD_") && !strings.HasPrefix(kv, "HOME=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "NOMAD_ADDR="+e.hub.URL, "NOMAD_TOKEN="+token, "HOME="+e.t.TempDir())
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		e.t.Fatalf("nomad %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	e.t.Logf("$ nomad %s  (exit %d)\n%s", strings.Join(args, " "), cmd.ProcessState.ExitCode(), out)
	return string(out), cmd.ProcessState.ExitCode()
}

// mustCLI is cli that fails the test unless the CLI exits with want.
func (e *env) mustCLI(want int, token string, args ...string) string {
	e.t.Helper()
	out, code := e.cli(token, args...)
	if code != want {
		e.t.Fatalf("nomad %s exited %d, want %d:\n%s", strings.Join(args, " "), code, want, out)
	}
	return out
}

// do makes a raw HTTP request to the hub as the nomad CLI would (token in
// X-Nomad-Token; "" for none).
func (e *env) do(ctx context.Context, token, method, path string, body []byte) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, e.hub.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Nomad-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, string(b)
}

func (e *env) status(token, method, path string, body []byte) (int, string) {
	e.t.Helper()
	resp, b := e.do(context.Background(), token, method, path, body)
	return resp.StatusCode, b
}

// jobFile writes a jobspec to a temporary file.
func (e *env) jobFile(name, hcl string) string {
	e.t.Helper()
	p := filepath.Join(e.t.TempDir(), name)
	if err := os.WriteFile(p, []byte(hcl), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// waitAlloc waits for the first allocation of a renter's job to reach a
// client status.
func (e *env) waitAlloc(renter, job, status string) *api.AllocationListStub {
	e.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		as, err := e.sched.Allocations(context.Background(), renter, job)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(as) > 0 && as[0].ClientStatus == status {
			return as[0]
		}
		if len(as) > 0 && as[0].ClientStatus == api.AllocClientStatusFailed {
			e.t.Fatalf("allocation of %s/%s failed: %+v", renter, job, as[0].TaskStates)
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no allocation of %s/%s is %s after 2 minutes: %+v", renter, job, status, as)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func mustMatch(t *testing.T, out string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile(p).MatchString(out) {
			t.Fatalf("output does not match %q:\n%s", p, out)
		}
	}
}

func mustNotContain(t *testing.T, out string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if strings.Contains(out, s) {
			t.Fatalf("output contains %q:\n%s", s, out)
		}
	}
}

// sleeperHCL is a service job that prints a line and then runs for an hour:
// something running, with a deployment, whose log is followed.
const sleeperHCL = `job "sleeper" {
  type = "service"
  meta {
    spiceroute_max_runtime = "10m"
  }
  group "sleeper" {
    task "sleeper" {
      driver = "exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo sleeper started; exec sleep 3600"]
      }
      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
`

// The stock nomad CLI, pointed at the hub with a renter's SpiceRoute token,
// runs and follows the renter's jobs; another renter on the same hub sees
// and touches none of them, by any path.
func TestNomadCLIThroughGateway(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alice, aliceAcct := e.renter("alice", 100*ledger.MicroPerSpice)
	bob, _ := e.renter("bob", 100*ledger.MicroPerSpice)

	var helloAlloc *api.AllocationListStub
	t.Run("Alice", func(t *testing.T) {
		e := *e
		e.t = t
		t.Run("JobRun", func(t *testing.T) {
			out := e.mustCLI(0, alice, "job", "run", "nomad-jobs/hello.nomad.hcl")
			mustMatch(t, out, `Evaluation ".*" finished with status "complete"`, `SpiceRoute: held up to \d+\.\d{6} SP`)
		})
		helloAlloc = e.waitAlloc("alice", "hello", api.AllocClientStatusComplete)
		t.Run("HoldOnLedger", func(t *testing.T) {
			a, err := e.hub.Store.Account(ctx, aliceAcct)
			if err != nil {
				t.Fatal(err)
			}
			if a.DebitsPending <= 0 {
				t.Fatalf("alice's account holds nothing after admission: %+v", a)
			}
		})
		t.Run("JobStatus", func(t *testing.T) {
			out := e.mustCLI(0, alice, "job", "status", "hello")
			mustMatch(t, out, `(?m)^ID\s+= hello$`, `(?m)^Namespace\s+= renter-alice$`, `(?m)^Node Pool\s+= spiceroute$`, helloAlloc.ID[:8])
			out = e.mustCLI(0, alice, "job", "status")
			mustMatch(t, out, `(?m)^hello\s+batch`)
		})
		t.Run("JobAllocs", func(t *testing.T) {
			out := e.mustCLI(0, alice, "job", "allocs", "hello")
			mustMatch(t, out, helloAlloc.ID[:8]+`.*complete`)
		})
		t.Run("AllocStatus", func(t *testing.T) {
			out := e.mustCLI(0, alice, "alloc", "status", helloAlloc.ID)
			mustMatch(t, out, `(?m)^ID\s+= `+helloAlloc.ID[:8], `(?m)^Client Status\s+= complete$`, `(?m)^Job ID\s+= hello$`)
			// A prefix works too: it is resolved by listing the renter's allocations.
			out = e.mustCLI(0, alice, "alloc", "status", helloAlloc.ID[:8])
			mustMatch(t, out, `(?m)^Client Status\s+= complete$`)
		})
		t.Run("AllocLogs", func(t *testing.T) {
			out := e.mustCLI(0, alice, "alloc", "logs", helloAlloc.ID)
			mustMatch(t, out, `hello from SpiceRoute`, `Linux`)
		})
		t.Run("JobInspect", func(t *testing.T) {
			out := e.mustCLI(0, alice, "job", "inspect", "hello")
			var got struct{ Job api.Job }
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("job inspect printed no job: %v\n%s", err, out)
			}
			j := got.Job
			if j.Namespace == nil || *j.Namespace != "renter-alice" || j.NodePool == nil || *j.NodePool != nomad.DefaultNodePool {
				t.Fatalf("inspected job in namespace %v, pool %v", j.Namespace, j.NodePool)
			}
			for _, k := range []string{jobs.MetaHold, jobs.MetaQuote, jobs.MetaAccount, jobs.MetaAdmitted} {
				if j.Meta[k] == "" {
					t.Errorf("inspected job lacks the hub's meta %s: %v", k, j.Meta)
				}
			}
			if j.Meta[jobs.MetaAccount] != aliceAcct.String() {
				t.Errorf("job paid from %s, want alice's account %s", j.Meta[jobs.MetaAccount], aliceAcct)
			}
		})
		t.Run("JobPlanShowsQuote", func(t *testing.T) {
			src, err := os.ReadFile("../../nomad-jobs/hello.nomad.hcl")
			if err != nil {
				t.Fatal(err)
			}
			changed := strings.Replace(string(src), "memory = 64", "memory = 96", 1)
			// Exit code 1: the plan creates allocations.
			out := e.mustCLI(1, alice, "job", "plan", e.jobFile("hello.nomad.hcl", changed))
			mustMatch(t, out, `\+/- Job: "hello"`, `MemoryMB:\s+"64" => "96"`,
				`SpiceRoute quote: up to \d+\.\d{6} SP for 10m0s of 100 MHz CPU, 96 MB memory and 150 MB disk`,
				`nomad job run -check-index \d+`)
			// The hub's own meta keys are not shown as removed.
			mustNotContain(t, out, jobs.MetaHold, jobs.MetaAdmitted)
			// The plan held nothing more.
			a, err := e.hub.Store.Account(ctx, aliceAcct)
			if err != nil {
				t.Fatal(err)
			}
			t.Run("CheckIndex", func(t *testing.T) {
				out, code := e.cli(alice, "job", "run", "-check-index", "1", e.jobFile("hello.nomad.hcl", changed))
				if code == 0 {
					t.Fatalf("a stale -check-index registered the job:\n%s", out)
				}
				mustMatch(t, out, `Enforcing job modify index 1: job exists with conflicting job modify index: \d+`)
				if b, _ := e.hub.Store.Account(ctx, aliceAcct); b.DebitsPending != a.DebitsPending {
					t.Fatalf("a refused -check-index changed alice's holds from %s to %s", a.DebitsPending, b.DebitsPending)
				}
			})
		})
		t.Run("Sleeper", func(t *testing.T) {
			out := e.mustCLI(0, alice, "job", "run", "-detach", e.jobFile("sleeper.nomad.hcl", sleeperHCL))
			mustMatch(t, out, `Job registration successful`)
			e.waitAlloc("alice", "sleeper", api.AllocClientStatusRunning)
		})
	})
	if t.Failed() {
		t.FailNow()
	}
	sleeper := e.waitAlloc("alice", "sleeper", api.AllocClientStatusRunning)
	var deployment string
	for deadline := time.Now().Add(time.Minute); deployment == ""; time.Sleep(100 * time.Millisecond) {
		_, body := e.status(alice, "GET", "/v1/job/sleeper/deployment", nil)
		var d *api.Deployment
		if err := json.Unmarshal([]byte(body), &d); err != nil {
			t.Fatalf("alice's sleeper deployment: %v: %s", err, body)
		}
		if d != nil {
			deployment = d.ID
		}
		if time.Now().After(deadline) {
			t.Fatal("alice's sleeper has no deployment after a minute")
		}
	}

	t.Run("LogsStreamAsWritten", func(t *testing.T) {
		// follow=true never ends while the task runs: the first frame
		// arrives only if the gateway flushes it.
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "GET", e.hub.URL+"/v1/client/fs/logs/"+sleeper.ID+"?task=sleeper&type=stdout&follow=true&origin=start&offset=0", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Nomad-Token", alice)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		dec := json.NewDecoder(resp.Body)
		for {
			var f struct{ Data string }
			if err := dec.Decode(&f); err != nil {
				t.Fatalf("no log frame before the stream ended or timed out: %v", err)
			}
			b, _ := base64.StdEncoding.DecodeString(f.Data)
			if strings.Contains(string(b), "sleeper started") {
				return
			}
		}
	})

	t.Run("BlockingQueriesAreCapped", func(t *testing.T) {
		// Nomad would wait 10 minutes for an index that never comes; the
		// gateway lets it wait testMaxWait.
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		const far = 1 << 40
		resp, body := e.do(ctx, alice, "GET", "/v1/jobs?index="+strconv.Itoa(far)+"&wait=10m", nil)
		idx, _ := strconv.ParseUint(resp.Header.Get("X-Nomad-Index"), 10, 64)
		if resp.StatusCode != http.StatusOK || idx == 0 || idx >= far || !strings.Contains(body, `"sleeper"`) {
			t.Fatalf("blocking query: status %d, index %d, body %s", resp.StatusCode, idx, body)
		}
	})

	t.Run("WhyNotPlaced", func(t *testing.T) {
		// 30 GB passes the policy (32 GiB per job) but no node has it.
		big := strings.NewReplacer(`job "hello"`, `job "big"`, `memory = 64`, `memory = 30000`).Replace(readFile(t, "../../nomad-jobs/hello.nomad.hcl"))
		out := e.mustCLI(2, alice, "job", "run", e.jobFile("big.nomad.hcl", big))
		mustMatch(t, out, `failed to place all allocations`, `Task Group "hello" \(failed to place 1 allocation\)`,
			`Dimension "memory" exhausted on 1 nodes`)
		out = e.mustCLI(0, alice, "job", "status", "big")
		mustMatch(t, out, `Placement Failure`, `Dimension "memory" exhausted on 1 nodes`)
		// The same reason in words, from the evaluation read through the gateway.
		_, body := e.status(alice, "GET", "/v1/job/big/evaluations", nil)
		var evals []*api.Evaluation
		if err := json.Unmarshal([]byte(body), &evals); err != nil || len(evals) == 0 {
			t.Fatalf("evaluations of big: %v: %s", err, body)
		}
		var why string
		for _, ev := range evals {
			w, err := e.sched.Unplaced(ctx, "alice", ev.ID)
			if err != nil {
				t.Fatal(err)
			}
			why += w
		}
		mustMatch(t, why, `group "hello": no node has enough memory \(1 of 1 nodes in pool spiceroute exhausted on memory\)`)
	})

	evalID := helloAlloc.EvalID
	t.Run("NomadIgnoresNamespaceOnByIDEndpoints", func(t *testing.T) {
		// Why the gateway checks owners: with the hub's token, Nomad returns
		// an allocation, evaluation or deployment by ID whatever namespace
		// is asked for, and serves its logs.
		for _, p := range []string{
			"/v1/allocation/" + helloAlloc.ID,
			"/v1/evaluation/" + evalID,
			"/v1/evaluation/" + evalID + "/allocations",
			"/v1/deployment/" + deployment,
			"/v1/client/fs/logs/" + helloAlloc.ID + "?task=hello&type=stdout",
		} {
			sep := "?"
			if strings.Contains(p, "?") {
				sep = "&"
			}
			req, err := http.NewRequest("GET", e.nomad.Addr+p+sep+"namespace=renter-bob", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Nomad-Token", e.nomad.ManagementToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || len(b) < 10 {
				t.Fatalf("Nomad %s in namespace renter-bob: %d %s", p, resp.StatusCode, b)
			}
		}
	})

	t.Run("Bob", func(t *testing.T) {
		e := *e
		e.t = t
		t.Run("RegisterLandsInOwnNamespace", func(t *testing.T) {
			spec := strings.Replace(readFile(t, "../../nomad-jobs/hello.nomad.hcl"), `job "hello" {`, "job \"bobs\" {\n  namespace = \"renter-alice\"\n  node_pool = \"default\"", 1)
			e.mustCLI(0, bob, "job", "run", "-namespace", "renter-alice", e.jobFile("bobs.nomad.hcl", spec))
			j, err := e.sched.Job(ctx, "bob", "bobs")
			if err != nil {
				t.Fatalf("bob's job is not in his namespace: %v", err)
			}
			if *j.Namespace != "renter-bob" || *j.NodePool != nomad.DefaultNodePool {
				t.Fatalf("bob's job landed in namespace %s, pool %s", *j.Namespace, *j.NodePool)
			}
			if _, err := e.sched.Job(ctx, "alice", "bobs"); err == nil {
				t.Fatal("bob registered a job in alice's namespace")
			}
		})
		t.Run("JobListShowsOnlyHis", func(t *testing.T) {
			for _, ns := range [][]string{nil, {"-namespace", "renter-alice"}, {"-namespace", "*"}} {
				out := e.mustCLI(0, bob, append([]string{"job", "status"}, ns...)...)
				mustMatch(t, out, `bobs`)
				mustNotContain(t, out, "hello", "sleeper", "big", "renter-alice")
			}
		})
		for _, args := range [][]string{
			{"job", "status", "hello"},
			{"job", "inspect", "hello"},
			{"job", "allocs", "hello"},
			{"job", "stop", "hello"},
			{"job", "stop", "-purge", "sleeper"},
			{"job", "status", "-namespace", "renter-alice", "hello"},
			{"job", "inspect", "-namespace", "*", "sleeper"},
			{"job", "stop", "-namespace", "renter-alice", "-yes", "sleeper"},
			{"job", "stop", "-namespace", "*", "-yes", "sleeper"},
			{"alloc", "status", helloAlloc.ID},
			{"alloc", "status", "-namespace", "renter-alice", helloAlloc.ID},
			{"alloc", "status", "-namespace", "*", helloAlloc.ID[:8]},
			{"alloc", "logs", helloAlloc.ID},
			{"alloc", "logs", "-namespace", "renter-alice", helloAlloc.ID},
			{"alloc", "logs", "-namespace", "*", "-job", "hello"},
			{"alloc", "logs", "-f", sleeper.ID},
			{"eval", "status", evalID},
		} {
			t.Run(strings.Join(args, "_"), func(t *testing.T) {
				out, code := e.cli(bob, args...)
				if code == 0 {
					t.Fatalf("bob's nomad %s succeeded:\n%s", strings.Join(args, " "), out)
				}
				mustMatch(t, out, `(?i)no (job|allocation|evaluation)\(?s?\)? with (prefix|id)|not found`)
				mustNotContain(t, out, "hello from SpiceRoute", "sleeper started", "renter-alice\n")
			})
		}
		t.Run("RawByIDRequestsAre404", func(t *testing.T) {
			for _, p := range []string{
				"/v1/allocation/" + helloAlloc.ID,
				"/v1/allocation/" + helloAlloc.ID + "?namespace=renter-alice",
				"/v1/evaluation/" + evalID,
				"/v1/evaluation/" + evalID + "/allocations?namespace=*",
				"/v1/deployment/" + deployment,
				"/v1/deployment/allocations/" + deployment,
				"/v1/client/fs/logs/" + helloAlloc.ID + "?task=hello&type=stdout&namespace=renter-alice",
				"/v1/client/allocation/" + sleeper.ID + "/stats",
			} {
				status, body := e.status(bob, "GET", p, nil)
				if status != http.StatusNotFound {
					t.Errorf("bob GET %s: %d %s", p, status, body)
				}
				// The same for alice is answered: the 404 is the owner check.
				if status, body := e.status(alice, "GET", p, nil); status != http.StatusOK {
					t.Errorf("alice GET %s: %d %s", p, status, body)
				}
			}
			// A nonexistent ID gets the same answer as alice's.
			missing := "00000000-0000-4000-8000-000000000000"
			_, want := e.status(bob, "GET", "/v1/allocation/"+helloAlloc.ID, nil)
			if status, body := e.status(bob, "GET", "/v1/allocation/"+missing, nil); status != http.StatusNotFound ||
				strings.Replace(body, missing, helloAlloc.ID, 1) != want {
				t.Errorf("a missing allocation: %d %q; alice's: %q", status, body, want)
			}
		})
		t.Run("RawListsAndSearchShowNothingOfAlice", func(t *testing.T) {
			for _, r := range []struct {
				path string
				want int
			}{
				{"/v1/jobs?namespace=*", http.StatusOK},
				{"/v1/jobs?namespace=renter-alice&prefix=hello", http.StatusOK},
				{"/v1/allocations?namespace=*", http.StatusOK},
				{"/v1/evaluations?namespace=renter-alice", http.StatusOK},
				{"/v1/deployments?namespace=*", http.StatusOK},
				{"/v1/job/hello?namespace=renter-alice", http.StatusNotFound},
				{"/v1/job/sleeper/summary?namespace=*", http.StatusNotFound},
				{"/v1/job/hello/versions?namespace=renter-alice", http.StatusNotFound},
			} {
				status, body := e.status(bob, "GET", r.path, nil)
				if status != r.want || strings.Contains(body, "renter-alice") || strings.Contains(body, helloAlloc.ID) || strings.Contains(body, sleeper.ID) {
					t.Errorf("bob GET %s: %d %s", r.path, status, body)
				}
			}
			for _, who := range []struct {
				token string
				want  bool
			}{{bob, false}, {alice, true}} {
				status, body := e.status(who.token, "PUT", "/v1/search?namespace=*",
					[]byte(`{"Prefix": "`+helloAlloc.ID[:4]+`", "Context": "allocs", "Namespace": "*"}`))
				if status != http.StatusOK || strings.Contains(body, helloAlloc.ID) != who.want {
					t.Errorf("search for %s's allocation as renter %v: %d %s", "alice", who.want, status, body)
				}
			}
		})
		t.Run("RawStopDoesNotReachAlice", func(t *testing.T) {
			e.status(bob, "DELETE", "/v1/job/sleeper?namespace=renter-alice&purge=true", nil)
			e.status(bob, "DELETE", "/v1/job/hello?namespace=*", nil)
		})
		t.Run("AliceIsUntouched", func(t *testing.T) {
			for _, id := range []string{"hello", "sleeper"} {
				j, err := e.sched.Job(ctx, "alice", id)
				if err != nil || j.Stop == nil || *j.Stop {
					t.Fatalf("alice's job %s after bob's attempts: %+v, %v", id, j, err)
				}
			}
			if a := e.waitAlloc("alice", "sleeper", api.AllocClientStatusRunning); a.ID != sleeper.ID {
				t.Fatalf("alice's sleeper was replaced: %s, was %s", a.ID, sleeper.ID)
			}
		})
	})

	t.Run("AliceStops", func(t *testing.T) {
		e := *e
		e.t = t
		out := e.mustCLI(0, alice, "job", "stop", "hello")
		mustMatch(t, out, `Evaluation ".*" finished with status "complete"`)
		j, err := e.sched.Job(ctx, "alice", "hello")
		if err != nil || !*j.Stop {
			t.Fatalf("alice's stopped job: %+v, %v", j, err)
		}
		// If the service job's deployment is still running, the CLI follows
		// it through the gateway too; Nomad cancels it, and the stock CLI
		// exits 1 for that.
		out, code := e.cli(alice, "job", "stop", "-purge", "sleeper")
		mustMatch(t, out, `Evaluation ".*" finished with status "complete"`)
		if code != 0 && (code != 1 || !strings.Contains(out, "Cancelled because job is stopped")) {
			t.Fatalf("nomad job stop -purge sleeper exited %d:\n%s", code, out)
		}
		if _, err := e.sched.Job(ctx, "alice", "sleeper"); err == nil {
			t.Fatal("alice's purged job is still in Nomad")
		}
	})
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// What the gateway refuses, and how the CLI shows it.
func TestGatewayRefuses(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alice, aliceAcct := e.renter("alice", 100*ledger.MicroPerSpice)
	poor, poorAcct := e.renter("poor", 1)

	t.Run("PolicyViolation", func(t *testing.T) {
		raw := strings.Replace(readFile(t, "../../nomad-jobs/hello.nomad.hcl"), `driver = "exec"`, `driver = "raw_exec"`, 1)
		out := e.mustCLI(1, alice, "job", "run", e.jobFile("raw.nomad.hcl", raw))
		mustMatch(t, out, `Unexpected response code: 400 \(the job breaks the hub's admission policy: .*task "hello".*allowed_drivers`)
		if _, err := e.sched.Job(ctx, "alice", "hello"); err == nil {
			t.Fatal("a job that breaks the policy reached Nomad")
		}
		if a, _ := e.hub.Store.Account(ctx, aliceAcct); a.DebitsPending != 0 {
			t.Fatalf("a refused job left a hold of %s", a.DebitsPending)
		}
	})
	t.Run("InsufficientFunds", func(t *testing.T) {
		out := e.mustCLI(1, poor, "job", "run", "nomad-jobs/hello.nomad.hcl")
		mustMatch(t, out, `Unexpected response code: 402 \(job hello costs up to \d+\.\d{6} SP .*your account cannot cover it`)
		if _, err := e.sched.Job(ctx, "poor", "hello"); err == nil {
			t.Fatal("a job its renter cannot pay for reached Nomad")
		}
		if a, _ := e.hub.Store.Account(ctx, poorAcct); a.DebitsPending != 0 || a.Balance() != 1 {
			t.Fatalf("poor's account after the refusal: %+v", a)
		}
	})
	t.Run("NomadRejectsTheJob", func(t *testing.T) {
		// Admission passes it; Nomad's validation does not.
		bad := strings.Replace(readFile(t, "../../nomad-jobs/hello.nomad.hcl"), `group "hello" {`,
			"group \"hello\" {\n    constraint {\n      attribute = \"${attr.kernel.name}\"\n      operator = \"bogus\"\n      value = \"linux\"\n    }", 1)
		out := e.mustCLI(1, alice, "job", "run", e.jobFile("bad.nomad.hcl", bad))
		mustMatch(t, out, `Unexpected response code: 400 \(Nomad refused the job: .*Unknown constraint type "bogus"`)
		if _, err := e.sched.Job(ctx, "alice", "hello"); err == nil {
			t.Fatal("a job Nomad refused is registered")
		}
		if a, _ := e.hub.Store.Account(ctx, aliceAcct); a.DebitsPending != 0 {
			t.Fatalf("a job Nomad refused left a hold of %s", a.DebitsPending)
		}
	})
	t.Run("NotAllowlisted", func(t *testing.T) {
		for _, r := range []struct{ method, path string }{
			{"GET", "/v1/nodes"},
			{"GET", "/v1/node/pools"},
			{"GET", "/v1/acl/tokens"},
			{"GET", "/v1/acl/token/self"},
			{"GET", "/v1/namespaces"},
			{"GET", "/v1/operator/raft/configuration"},
			{"GET", "/v1/vars"},
			{"GET", "/v1/event/stream"},
			{"GET", "/v1/client/fs/cat/00000000-0000-4000-8000-000000000000?path=hello/etc/shadow"},
			{"GET", "/v1/client/fs/ls/00000000-0000-4000-8000-000000000000?path=/"},
			{"GET", "/v1/agent/self"},
			{"GET", "/v1/status/leader"},
			{"PUT", "/v1/job/hello/scale"},
			{"PUT", "/v1/job/hello/revert"},
			{"PUT", "/v1/job/hello/dispatch"},
			{"PUT", "/v1/job/hello/evaluate"},
			{"PUT", "/v1/allocation/00000000-0000-4000-8000-000000000000/stop"},
			{"PUT", "/v1/client/allocation/00000000-0000-4000-8000-000000000000/restart"},
			{"GET", "/v1/client/allocation/00000000-0000-4000-8000-000000000000/exec"},
			{"DELETE", "/v1/allocations"},
			{"GET", "/v1/allocation/not-a-uuid"},
			{"GET", "/v1/job/x/../../nodes"},
		} {
			status, body := e.status(alice, r.method, r.path, nil)
			if want := "not available through the SpiceRoute gateway: " + r.method + " "; status != http.StatusForbidden || !strings.HasPrefix(body, want) {
				t.Errorf("%s %s: %d %q", r.method, r.path, status, body)
			}
		}
		out := e.mustCLI(1, alice, "node", "status")
		mustMatch(t, out, `Unexpected response code: 403 \(not available through the SpiceRoute gateway: GET /v1/nodes\)`)
	})
	t.Run("NomadUnreachable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := "http://" + l.Addr().String()
		l.Close() // nothing listens there now
		gw, err := gateway.New(gateway.Config{NomadAddr: addr, Namespace: e.sched.Namespace}, e.jobs, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"/v1/jobs", "/v1/allocation/00000000-0000-4000-8000-000000000000"} {
			req := httptest.NewRequest("GET", p, nil)
			req = req.WithContext(auth.WithPrincipal(req.Context(), auth.Principal{Name: "alice", Role: auth.RoleRenter}))
			rec := httptest.NewRecorder()
			gw.ServeHTTP(rec, req)
			if rec.Code != http.StatusBadGateway || rec.Body.String() != "the hub cannot reach its Nomad cluster right now; try again later" {
				t.Errorf("GET %s with Nomad down: %d %q", p, rec.Code, rec.Body.String())
			}
		}
	})
	t.Run("SearchOutsideNamespacedContexts", func(t *testing.T) {
		for _, c := range []string{"nodes", "namespaces", "all", "node_pools", "variables"} {
			status, body := e.status(alice, "PUT", "/v1/search", []byte(`{"Prefix": "", "Context": "`+c+`"}`))
			if status != http.StatusForbidden || !strings.Contains(body, "not available") {
				t.Errorf("search context %s: %d %s", c, status, body)
			}
		}
	})
	t.Run("NoToken", func(t *testing.T) {
		status, body := e.status("", "GET", "/v1/jobs", nil)
		if status != http.StatusUnauthorized || body != "set NOMAD_TOKEN to your SpiceRoute API token" {
			t.Fatalf("no token: %d %q", status, body)
		}
		out := e.mustCLI(1, "", "job", "status")
		mustMatch(t, out, `401 \(set NOMAD_TOKEN to your SpiceRoute API token\)`)
	})
	t.Run("NotARenter", func(t *testing.T) {
		for _, role := range []auth.Role{auth.RoleContributor, auth.RoleOperator} {
			tok := e.hub.Token(t, "someone-"+string(role), role)
			status, body := e.status(tok, "GET", "/v1/jobs", nil)
			if status != http.StatusForbidden || !strings.Contains(body, "for renters") {
				t.Errorf("%s: %d %q", role, status, body)
			}
		}
	})
	t.Run("BodyOverLimit", func(t *testing.T) {
		big := bytes.Repeat([]byte(" "), gateway.DefaultBodyLimit+1)
		for _, p := range []string{"/v1/jobs", "/v1/jobs/parse", "/v1/job/hello/plan"} {
			status, body := e.status(alice, "PUT", p, big)
			if status != http.StatusRequestEntityTooLarge {
				t.Errorf("PUT %s with %d bytes: %d %s", p, len(big), status, body)
			}
		}
	})
	t.Run("MalformedRegistrations", func(t *testing.T) {
		for _, c := range []struct{ path, body, want string }{
			{"/v1/jobs", `{`, "not valid JSON"},
			{"/v1/jobs", `{}`, "the request has no job"},
			{"/v1/jobs", `{"Job": {"Name": "x"}}`, "the job has no ID"},
			{"/v1/job/other", `{"Job": {"ID": "x"}}`, `the job's ID "x" does not match "other" in the URL`},
		} {
			status, body := e.status(alice, "PUT", c.path, []byte(c.body))
			if status != http.StatusBadRequest || !strings.Contains(body, c.want) {
				t.Errorf("PUT %s %s: %d %q", c.path, c.body, status, body)
			}
		}
	})
	t.Run("ParsePassesThrough", func(t *testing.T) {
		body, _ := json.Marshal(api.JobsParseRequest{JobHCL: readFile(t, "../../nomad-jobs/hello.nomad.hcl"), Canonicalize: true})
		status, out := e.status(alice, "PUT", "/v1/jobs/parse", body)
		var j api.Job
		if status != http.StatusOK || json.Unmarshal([]byte(out), &j) != nil || j.ID == nil || *j.ID != "hello" {
			t.Fatalf("parse: %d %s", status, out)
		}
		if _, err := e.sched.Job(ctx, "alice", "hello"); err == nil {
			t.Fatal("parsing registered the job")
		}
	})
}

// TestFollowedLogsOutliveTheRequestTimeout: `nomad alloc logs -f` through
// the hub streams for as long as the task writes, past the API's request
// timeout (1s here; 30s in a hub), as the hub wires the API
// (api.Config.Unbounded = gateway.Streaming).
func TestFollowedLogsOutliveTheRequestTimeout(t *testing.T) {
	e := newEnvWith(t, hubapi.Config{RequestTimeout: time.Second, Unbounded: gateway.Streaming})
	alice, _ := e.renter("alice", 100*ledger.MicroPerSpice)
	job := e.jobFile("ticks.nomad.hcl", `job "ticks" {
  type = "batch"
  group "g" {
    ephemeral_disk {
      size = 150
    }
    task "t" {
      driver = "exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "for i in 1 2 3 4 5 6 7 8; do echo tick $i; sleep 0.5; done"]
      }
      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
`)
	e.mustCLI(0, alice, "job", "run", "-detach", job)
	a := e.waitAlloc("alice", "ticks", api.AllocClientStatusRunning)
	// Follow from the start for 10s (the CLI follows until interrupted):
	// the stream outlives the 1s timeout and brings lines the task wrote
	// seconds after it began.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, "alloc", "logs", "-f", a.ID)
	cmd.Env = append(os.Environ(), "NOMAD_ADDR="+e.hub.URL, "NOMAD_TOKEN="+alice, "NOMAD_NAMESPACE=")
	b, _ := cmd.Output()
	out := string(b)
	for _, want := range []string{"tick 1", "tick 8"} {
		if !strings.Contains(out, want) {
			t.Errorf("followed logs lack %q:\n%s", want, out)
		}
	}
	// A request that is not a followed stream is still cut at the timeout.
	if !gateway.Streaming(httptest.NewRequest("GET", "/v1/client/fs/logs/x?follow=true", nil)) ||
		gateway.Streaming(httptest.NewRequest("GET", "/v1/client/fs/logs/x", nil)) ||
		gateway.Streaming(httptest.NewRequest("GET", "/v1/jobs?follow=true", nil)) {
		t.Error("gateway.Streaming picks the wrong requests")
	}
}
