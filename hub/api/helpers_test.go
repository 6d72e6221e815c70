package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/api/apitest"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// reply is an HTTP response, read whole.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// call sends method path with token (none if empty). body is sent as is
// when it is a string or []byte, else as JSON; nil sends no body.
func call(tb testing.TB, h *apitest.Hub, method, path, token string, body any, headers ...string) reply {
	tb.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			tb.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, h.URL+path, r)
	if err != nil {
		tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: data}
}

// want checks the status and decodes the body into v (if not nil).
func (r reply) want(tb testing.TB, status int, v any) {
	tb.Helper()
	if r.status != status {
		tb.Fatalf("status %d, want %d; body: %s", r.status, status, r.body)
	}
	if v != nil {
		if err := json.Unmarshal(r.body, v); err != nil {
			tb.Fatalf("decode %s: %v", r.body, err)
		}
	}
}

// wantError checks the status and error code and returns the error body.
func (r reply) wantError(tb testing.TB, status int, code coded.Code) api.ErrorBody {
	tb.Helper()
	var e api.ErrorReply
	if err := json.Unmarshal(r.body, &e); err != nil {
		tb.Fatalf("status %d, body not an error reply: %s", r.status, r.body)
	}
	if r.status != status || e.Error.Code != code {
		tb.Fatalf("got %d %s (%s), want %d %s", r.status, e.Error.Code, e.Error.Message, status, code)
	}
	if e.Error.RequestID == "" || e.Error.RequestID != r.header.Get("X-Request-ID") {
		tb.Fatalf("error reply request_id %q, X-Request-ID header %q", e.Error.RequestID, r.header.Get("X-Request-ID"))
	}
	return e.Error
}

// newAccount creates an account through the API and returns its ID.
func newAccount(tb testing.TB, h *apitest.Hub, token, owner string, kind ledger.AccountKind) ledger.ID {
	tb.Helper()
	id := ledger.NewID()
	body := map[string]any{"id": id, "kind": kind}
	if owner != "" {
		body["owner"] = owner
	}
	var res ledger.AccountResult
	call(tb, h, "POST", "/api/accounts", token, body).want(tb, http.StatusCreated, &res)
	if res.Account.ID != id || res.Account.Timestamp == 0 {
		tb.Fatalf("created account %+v", res.Account)
	}
	return id
}

// account reads an account as token.
func account(tb testing.TB, h *apitest.Hub, token string, id ledger.ID) ledger.Account {
	tb.Helper()
	var a ledger.Account
	call(tb, h, "GET", "/api/accounts/"+id.String(), token, nil).want(tb, http.StatusOK, &a)
	return a
}

// balances reads the balance of each account (as the operator).
func balances(tb testing.TB, h *apitest.Hub, ids ...ledger.ID) []ledger.Amount {
	tb.Helper()
	out := make([]ledger.Amount, len(ids))
	for i, id := range ids {
		a := account(tb, h, h.Operator, id)
		out[i] = a.Balance()
	}
	return out
}

func transfer(from, to ledger.ID, amount ledger.Amount) ledger.Transfer {
	return ledger.Transfer{ID: ledger.NewID(), DebitAccountID: from, CreditAccountID: to, Amount: amount}
}

const sp = ledger.MicroPerSpice
