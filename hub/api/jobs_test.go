package api_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/api/apitest"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/hubtest"
	"github.com/spiceroute/spiceroute/hub/jobs"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
)

// jobHub is a running hub (hub.Open + Run) on a fresh database, whose Nomad
// cluster is a real `nomad agent -dev` with one client node in the hub's
// node pool, contributed by "carol".
type jobHub struct {
	*hubtest.Hub
	// api points call() at the hub.
	api *apitest.Hub
}

func startJobHub(t *testing.T) *jobHub {
	t.Helper()
	h := hubtest.StartWithNomad(t)
	return &jobHub{Hub: h, api: &apitest.Hub{URL: h.URL(), Store: h.Store, Ledger: h.Ledger}}
}

func (h *jobHub) createAccount(t *testing.T, a ledger.Account) { h.CreateAccount(t, a) }

// renter gives name a renter account funded with funds from the hub's
// issuance account, and returns it with a renter token.
func (h *jobHub) renter(t *testing.T, name string, funds ledger.Amount) (ledger.ID, string) {
	t.Helper()
	return h.Renter(t, name, funds), h.token(t, name, auth.RoleRenter)
}

func (h *jobHub) token(t *testing.T, name string, role auth.Role) string {
	return h.Token(t, name, role)
}

func (h *jobHub) account(t *testing.T, id ledger.ID) *ledger.Account {
	t.Helper()
	a, err := h.Store.Account(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return &a
}

// nomadJobs lists the IDs of the jobs Nomad has in renter's namespace.
func (h *jobHub) nomadJobs(t *testing.T, renter string) []string {
	t.Helper()
	stubs, err := h.Jobs.Sched.Jobs(context.Background(), renter)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range stubs {
		ids = append(ids, s.ID)
	}
	return ids
}

// parse parses an HCL jobspec with Nomad, as the hub does.
func (h *jobHub) parse(t *testing.T, hcl string) *nomadapi.Job {
	t.Helper()
	j, err := h.Jobs.Sched.ParseHCL(context.Background(), hcl)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func helloHCL(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../nomad-jobs/hello.nomad.hcl")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// poll calls check every 200ms until it returns "" or timeout passes.
func poll(t *testing.T, timeout time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		why := check()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, why)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func mustContain(t *testing.T, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("%q lacks %q", s, w)
		}
	}
}

// TestJobsAPI drives /api/jobs of a real hub with a real Nomad agent.
func TestJobsAPI(t *testing.T) {
	h := startJobHub(t)
	const funds = 10 * sp
	aliceAcct, alice := h.renter(t, "alice", funds)
	_, bob := h.renter(t, "bob", funds)
	hello := helloHCL(t)
	helloQuote, err := market.DefaultPrices.Cost(market.Resources{CPUMHz: 100, MemoryMB: 64, DiskMB: 150}, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("OnlyRenters", func(t *testing.T) {
		for _, tok := range []string{h.token(t, "carol", auth.RoleContributor), h.token(t, "op", auth.RoleOperator)} {
			e := call(t, h.api, "GET", "/api/jobs", tok, nil).wantError(t, http.StatusForbidden, ledger.CodeForbidden)
			mustContain(t, e.Message, "only renters run jobs")
			call(t, h.api, "POST", "/api/jobs", tok, api.JobRequest{HCL: hello}).wantError(t, http.StatusForbidden, ledger.CodeForbidden)
			call(t, h.api, "GET", "/api/jobs/hello", tok, nil).wantError(t, http.StatusForbidden, ledger.CodeForbidden)
			call(t, h.api, "DELETE", "/api/jobs/hello", tok, nil).wantError(t, http.StatusForbidden, ledger.CodeForbidden)
			call(t, h.api, "GET", "/api/jobs/hello/logs", tok, nil).wantError(t, http.StatusForbidden, ledger.CodeForbidden)
		}
		call(t, h.api, "GET", "/api/jobs", "", nil).wantError(t, http.StatusUnauthorized, api.CodeUnauthenticated)
		if ids := h.nomadJobs(t, "carol"); len(ids) != 0 {
			t.Errorf("a contributor's submission reached Nomad: %v", ids)
		}
	})

	t.Run("Rejections", func(t *testing.T) {
		poorAcct, poor := h.renter(t, "poor", 1)
		raw := strings.Replace(hello, `driver = "exec"`, `driver = "raw_exec"`, 1)
		for _, tc := range []struct {
			name   string
			token  string
			body   any
			status int
			code   coded.Code
			want   []string
		}{
			{"NeitherHCLNorJob", alice, `{}`, 400, "bad_request", []string{`send {"hcl"`}},
			{"BothHCLAndJob", alice, map[string]any{"hcl": hello, "job": h.parse(t, hello)}, 400, "bad_request", []string{"not both"}},
			{"EmptyBody", alice, ``, 400, "bad_request", []string{"empty body"}},
			{"HCLNotAString", alice, `{"hcl": 5}`, 400, "bad_request", []string{"hcl: want a JSON string"}},
			{"UnknownField", alice, `{"hcl": "x", "priority": 5}`, 400, "bad_request", []string{"priority: unknown field"}},
			{"MalformedHCL", alice, api.JobRequest{HCL: `job "broken" { group "g" {`}, 400, "invalid", []string{"jobspec:"}},
			{"JobNotAnObject", alice, `{"job": "hello"}`, 400, "bad_request", []string{"want Nomad's JSON job (an object), got a string"}},
			{"JobWrapped", alice, map[string]any{"job": map[string]any{"Job": h.parse(t, hello)}}, 400, "bad_request", []string{`send the object under "Job"`}},
			{"JobUnknownField", alice, `{"job": {"ID": "x", "TaskGroupz": []}}`, 400, "bad_request", []string{"job.TaskGroupz: unknown field"}},
			{"JobWrongType", alice, `{"job": {"ID": 7}}`, 400, "bad_request", []string{"job.ID: want a JSON"}},
			{"JobWithoutID", alice, `{"job": {"Name": "x"}}`, 422, "policy_violation", []string{"no ID"}},
			{"PolicyViolation", alice, api.JobRequest{HCL: raw}, 422, "policy_violation",
				[]string{`group "hello" task "hello": driver "raw_exec" is not allowed`, "(rule allowed_drivers)"}},
			{"InsufficientFunds", poor, api.JobRequest{HCL: hello}, 422, "insufficient_funds",
				[]string{fmt.Sprintf("job hello costs up to %s (10m0s at the current prices)", helloQuote), "0.000001 SP"}},
			{"NoRenterAccount", h.token(t, "dave", auth.RoleRenter), api.JobRequest{HCL: hello}, 403, "no_renter_account", []string{"dave has no renter account"}},
			{"BodyTooLarge", alice, api.JobRequest{HCL: hello + "#" + strings.Repeat("x", 1<<20)}, 413, "body_too_large", nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := call(t, h.api, "POST", "/api/jobs", tc.token, tc.body)
				e := r.wantError(t, tc.status, tc.code)
				mustContain(t, e.Message, tc.want...)
			})
		}
		for _, name := range []string{"alice", "poor", "dave"} {
			if ids := h.nomadJobs(t, name); len(ids) != 0 {
				t.Errorf("rejected jobs of %s reached Nomad: %v", name, ids)
			}
		}
		for _, id := range []ledger.ID{aliceAcct, poorAcct} {
			if a := h.account(t, id); a.DebitsPending != 0 || a.DebitsPosted != 0 {
				t.Errorf("account %s after rejections: %s held, %s debited", id, a.DebitsPending, a.DebitsPosted)
			}
		}
		var list api.JobsReply
		call(t, h.api, "GET", "/api/jobs", alice, nil).want(t, 200, &list)
		for _, r := range list.Jobs {
			if r.State != jobs.Released {
				t.Errorf("a rejected submission left admission %+v", r)
			}
		}
	})

	// Alice runs hello given as Nomad's JSON job (what `nomad job inspect` prints under "Job").
	var adm jobs.Admission
	call(t, h.api, "POST", "/api/jobs", alice, map[string]any{"job": h.parse(t, hello)}).want(t, http.StatusCreated, &adm)
	if adm.JobID != "hello" || adm.Namespace != "renter-alice" || adm.Quote.Max != helloQuote || adm.Hold.IsZero() || adm.EvalID == "" || len(adm.Key) != 32 {
		t.Fatalf("admission %+v, want hello in renter-alice quoted %s", adm, helloQuote)
	}

	t.Run("StatusAndLogs", func(t *testing.T) {
		poll(t, 60*time.Second, func() string {
			var st jobs.Status
			call(t, h.api, "GET", "/api/jobs/hello", alice, nil).want(t, 200, &st)
			if len(st.Allocations) == 0 || len(st.Allocations[0].Tasks) == 0 || st.Allocations[0].Tasks[0].StartedAt.IsZero() {
				return fmt.Sprintf("hello has not started: %+v", st)
			}
			if st.Admission == nil || st.Admission.Key != adm.Key || st.Admission.Quote.Max != helloQuote {
				return fmt.Sprintf("hello's admission %+v, want %s", st.Admission, adm.Key)
			}
			return ""
		})
		poll(t, 30*time.Second, func() string {
			r := call(t, h.api, "GET", "/api/jobs/hello/logs", alice, nil)
			if r.status != 200 || !strings.Contains(string(r.body), "hello from SpiceRoute\n") {
				return fmt.Sprintf("logs: %d %q", r.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				return "logs Content-Type " + ct
			}
			return ""
		})
		r := call(t, h.api, "GET", "/api/jobs/hello/logs?limit=5", alice, nil)
		if r.status != 200 || string(r.body) != "hello" {
			t.Errorf("logs with limit 5: %d %q", r.status, r.body)
		}
		call(t, h.api, "GET", "/api/jobs/hello/logs?stream=stderr&task=hello", alice, nil).want(t, 200, nil)
		e := call(t, h.api, "GET", "/api/jobs/hello/logs?task=other", alice, nil).wantError(t, 400, ledger.CodeInvalid)
		mustContain(t, e.Message, `logs of job "hello": Nomad refused: unknown task name "other"`)
	})

	t.Run("Parameters", func(t *testing.T) {
		for _, tc := range []struct{ path, want string }{
			{"/api/jobs?limit=0", "limit: want an integer in [1, 500]"},
			{"/api/jobs?limit=501", "limit: want an integer in [1, 500]"},
			{"/api/jobs?limit=ten", "limit: want an integer"},
			{"/api/jobs/" + strings.Repeat("j", 129), "job ID: longer than 128 bytes"},
			{"/api/jobs/a%20b", "must not contain spaces"},
			{"/api/jobs/a%2Fb", "must not contain spaces, control characters or slashes"},
			{"/api/jobs/hello/logs?stream=both", `stream: want stdout or stderr, got "both"`},
			{"/api/jobs/hello/logs?limit=0", "limit: want an integer in [1, 16777216]"},
			{"/api/jobs/hello/logs?limit=16777217", "limit: want an integer in [1, 16777216]"},
			{"/api/jobs/hello/logs?alloc=abc", `alloc: "abc" is not an allocation ID`},
			{"/api/jobs/hello/logs?task=a%0Ab", "task"},
		} {
			e := call(t, h.api, "GET", tc.path, alice, nil).wantError(t, 400, api.CodeBadRequest)
			mustContain(t, e.Message, tc.want)
		}
		call(t, h.api, "DELETE", "/api/jobs/a%20b", alice, nil).wantError(t, 400, api.CodeBadRequest)
		call(t, h.api, "PUT", "/api/jobs/hello", alice, nil).wantError(t, 405, api.CodeMethodNotAllowed)
		e := call(t, h.api, "GET", "/api/jobs/nope", alice, nil).wantError(t, 404, jobs.CodeJobNotFound)
		mustContain(t, e.Message, `you have no job "nope"`)
	})

	t.Run("RenterSeesOnlyOwnJobs", func(t *testing.T) {
		call(t, h.api, "GET", "/api/jobs/hello", bob, nil).wantError(t, 404, jobs.CodeJobNotFound)
		call(t, h.api, "GET", "/api/jobs/hello/logs", bob, nil).wantError(t, 404, jobs.CodeJobNotFound)
		call(t, h.api, "DELETE", "/api/jobs/hello", bob, nil).wantError(t, 404, jobs.CodeJobNotFound)
		j, err := h.Jobs.Sched.Job(context.Background(), "alice", "hello")
		if err != nil || j.Stop != nil && *j.Stop {
			t.Fatalf("bob's stop reached alice's job: %+v, %v", j, err)
		}
		var list api.JobsReply
		call(t, h.api, "GET", "/api/jobs", bob, nil).want(t, 200, &list)
		if len(list.Jobs) != 0 {
			t.Fatalf("bob lists %d jobs before running any: %+v", len(list.Jobs), list.Jobs[0])
		}
	})

	t.Run("UnplacedSaysWhy", func(t *testing.T) {
		win := hubtest.WindowsJob
		call(t, h.api, "POST", "/api/jobs", bob, api.JobRequest{HCL: win}).want(t, http.StatusCreated, nil)
		var st jobs.Status
		poll(t, 30*time.Second, func() string {
			call(t, h.api, "GET", "/api/jobs/win", bob, nil).want(t, 200, &st)
			if !strings.Contains(st.Unplaced, "constraint ${attr.kernel.name} = windows filtered 1 node") {
				return fmt.Sprintf("win's status says nothing of the constraint: %+v", st)
			}
			// Admissions are marked running moments after Nomad has the job.
			if st.Admission == nil || st.Admission.State != jobs.Running {
				return fmt.Sprintf("win's admission is not running: %+v", st.Admission)
			}
			return ""
		})
		if st.Status != "pending" || len(st.Allocations) != 0 || st.Admission == nil || st.Admission.State != jobs.Running {
			t.Errorf("unplaced job's status %+v", st)
		}
		var list api.JobsReply
		call(t, h.api, "GET", "/api/jobs", bob, nil).want(t, 200, &list)
		if len(list.Jobs) != 1 || list.Jobs[0].JobID != "win" || list.Jobs[0].Renter != "bob" {
			t.Errorf("bob's jobs: %+v", list.Jobs)
		}
		call(t, h.api, "GET", "/api/jobs?limit=500", alice, nil).want(t, 200, &list)
		for _, r := range list.Jobs {
			if r.Renter != "alice" || r.JobID == "win" {
				t.Errorf("alice lists %+v", r)
			}
		}
		call(t, h.api, "GET", "/api/jobs/win", alice, nil).wantError(t, 404, jobs.CodeJobNotFound)

		var stopped api.JobStopped
		call(t, h.api, "DELETE", "/api/jobs/win", bob, nil).want(t, http.StatusAccepted, &stopped)
		if stopped.JobID != "win" || stopped.Message == "" {
			t.Errorf("stop reply %+v", stopped)
		}
		j, err := h.Jobs.Sched.Job(context.Background(), "bob", "win")
		if err != nil || j.Stop == nil || !*j.Stop {
			t.Errorf("win is not stopped in Nomad: %v", err)
		}
	})

	t.Run("SettledAndBalanced", func(t *testing.T) {
		var st jobs.Status
		poll(t, 90*time.Second, func() string {
			call(t, h.api, "GET", "/api/jobs/hello", alice, nil).want(t, 200, &st)
			if st.Admission == nil || st.Admission.State != jobs.Settled || st.Admission.Invoice == 0 {
				return fmt.Sprintf("hello is not settled and invoiced: %+v", st.Admission)
			}
			return ""
		})
		rec := st.Admission
		if rec.Charged <= 0 || rec.Charged >= helloQuote {
			t.Fatalf("hello charged %s, want more than 0 and less than its quote %s", rec.Charged, helloQuote)
		}
		if a := h.account(t, aliceAcct); a.Balance() != funds-rec.Charged || a.DebitsPending != 0 {
			t.Fatalf("alice's balance %s (%s held), want %s", a.Balance(), a.DebitsPending, funds-rec.Charged)
		}
		h.api.CheckBooks(t)
	})
}
