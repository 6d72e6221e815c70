package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/api/apitest"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/translog"
)

func TestTransfers(t *testing.T) {
	h := apitest.New(t, api.Config{})
	alice := h.Token(t, "alice", auth.RoleRenter)
	bob := h.Token(t, "bob", auth.RoleContributor)
	ali := newAccount(t, h, alice, "", ledger.KindRenter)
	bo := newAccount(t, h, bob, "bob", ledger.KindContributor)

	// The operator issues 100 SP to alice from the issuance account.
	issue := transfer(h.Issuance, ali, 100*sp)
	var res ledger.TransferResult
	call(t, h, "POST", "/api/transfers", h.Operator, issue).want(t, http.StatusCreated, &res)
	if res.Transfer.Timestamp == 0 || res.Transfer.LogIndex == 0 || res.Existed {
		t.Fatalf("issue: %+v", res)
	}

	pay := transfer(ali, bo, 12_500_000)
	var paid ledger.TransferResult
	call(t, h, "POST", "/api/transfers", alice, pay).want(t, http.StatusCreated, &paid)
	if got := balances(t, h, h.Issuance, ali, bo); !slices.Equal(got, []ledger.Amount{-100 * sp, 87_500_000, 12_500_000}) {
		t.Fatalf("balances issuance, alice, bob = %v", got)
	}

	t.Run("RetryExisted", func(t *testing.T) {
		var again ledger.TransferResult
		call(t, h, "POST", "/api/transfers", alice, pay).want(t, http.StatusOK, &again)
		if !again.Existed || again.Transfer != paid.Transfer {
			t.Fatalf("retry = %+v, want existed %+v", again, paid.Transfer)
		}
		if got := balances(t, h, ali); got[0] != 87_500_000 {
			t.Fatalf("retry moved money: alice has %s", got[0])
		}
	})
	t.Run("IDConflict", func(t *testing.T) {
		other := pay
		other.Amount++
		call(t, h, "POST", "/api/transfers", alice, other).wantError(t, http.StatusConflict, ledger.CodeIDConflict)
	})
	t.Run("InsufficientFunds", func(t *testing.T) {
		e := call(t, h, "POST", "/api/transfers", alice, transfer(ali, bo, 88*sp)).
			wantError(t, http.StatusUnprocessableEntity, ledger.CodeInsufficientFunds)
		if !strings.Contains(e.Message, "87.500000 SP") {
			t.Errorf("message %q does not say what is available", e.Message)
		}
	})
	t.Run("DebitOthersForbidden", func(t *testing.T) {
		call(t, h, "POST", "/api/transfers", alice, transfer(bo, ali, sp)).wantError(t, http.StatusForbidden, ledger.CodeForbidden)
	})
	t.Run("ReadOthersNotFound", func(t *testing.T) {
		call(t, h, "GET", "/api/accounts/"+bo.String(), alice, nil).wantError(t, http.StatusNotFound, api.CodeAccountNotFound)
		call(t, h, "GET", "/api/accounts/"+bo.String()+"/transfers", alice, nil).wantError(t, http.StatusNotFound, api.CodeAccountNotFound)
		call(t, h, "GET", "/api/transfers/"+issue.ID.String(), bob, nil).wantError(t, http.StatusNotFound, api.CodeTransferNotFound)
		call(t, h, "GET", "/api/accounts?owner=bob", alice, nil).wantError(t, http.StatusForbidden, ledger.CodeForbidden)
	})
	t.Run("ReadOwn", func(t *testing.T) {
		// The payment touches both, so both see it.
		for _, tok := range []string{alice, bob, h.Operator} {
			var got ledger.Transfer
			call(t, h, "GET", "/api/transfers/"+pay.ID.String(), tok, nil).want(t, http.StatusOK, &got)
			if got != paid.Transfer {
				t.Fatalf("GET transfer = %+v, want %+v", got, paid.Transfer)
			}
		}
		var list api.AccountsReply
		call(t, h, "GET", "/api/accounts", alice, nil).want(t, http.StatusOK, &list)
		if len(list.Accounts) != 1 || list.Accounts[0].ID != ali || list.Accounts[0].Balance() != 87_500_000 {
			t.Fatalf("alice's accounts: %+v", list.Accounts)
		}
		var raw map[string]any
		call(t, h, "GET", "/api/accounts/"+ali.String(), alice, nil).want(t, http.StatusOK, &raw)
		if raw["balance"] != 87_500_000.0 || raw["kind"] != "renter" || raw["owner"] != "alice" {
			t.Fatalf("account JSON: %v", raw)
		}
		var ts api.TransfersReply
		call(t, h, "GET", "/api/accounts/"+ali.String()+"/transfers?limit=1", alice, nil).want(t, http.StatusOK, &ts)
		if len(ts.Transfers) != 1 || ts.Transfers[0].ID != pay.ID {
			t.Fatalf("newest transfer of alice: %+v", ts.Transfers)
		}
		call(t, h, "GET", "/api/accounts/"+ali.String()+"/transfers?limit=0", alice, nil).wantError(t, http.StatusBadRequest, api.CodeBadRequest)
		var ops api.AccountsReply
		call(t, h, "GET", "/api/accounts?owner=bob", h.Operator, nil).want(t, http.StatusOK, &ops)
		if len(ops.Accounts) != 1 || ops.Accounts[0].ID != bo {
			t.Fatalf("operator's view of bob's accounts: %+v", ops.Accounts)
		}
	})
	t.Run("RenterCannotCreateIssuance", func(t *testing.T) {
		body := map[string]any{"id": ledger.NewID(), "kind": "issuance", "flags": 1}
		call(t, h, "POST", "/api/accounts", alice, body).wantError(t, http.StatusForbidden, ledger.CodeForbidden)
		body = map[string]any{"id": ledger.NewID(), "kind": "renter", "owner": "bob"}
		call(t, h, "POST", "/api/accounts", alice, body).wantError(t, http.StatusForbidden, ledger.CodeForbidden)
	})
	t.Run("AccountRetryAndBatch", func(t *testing.T) {
		var again ledger.AccountResult
		call(t, h, "POST", "/api/accounts", alice, map[string]any{"id": ali, "kind": "renter"}).want(t, http.StatusOK, &again)
		if !again.Existed || again.Account.ID != ali {
			t.Fatalf("account retry: %+v", again)
		}
		a1, a2 := ledger.NewID(), ledger.NewID()
		body := map[string]any{"accounts": []map[string]any{
			{"id": a1, "kind": "renter"}, {"id": a2, "kind": "escrow"},
		}}
		var br api.AccountResults
		call(t, h, "POST", "/api/accounts", alice, body).want(t, http.StatusOK, &br)
		if len(br.Results) != 2 || br.Results[0].Err != nil || br.Results[1].Err == nil || br.Results[1].Err.Code != ledger.CodeForbidden {
			t.Fatalf("account batch: %+v", br.Results)
		}
	})
	t.Run("ZeroIDAndAmount", func(t *testing.T) {
		z := transfer(ali, bo, sp)
		z.ID = ledger.ID{}
		call(t, h, "POST", "/api/transfers", alice, z).wantError(t, http.StatusBadRequest, ledger.CodeIDZero)
		call(t, h, "POST", "/api/transfers", alice, transfer(ali, bo, -5)).wantError(t, http.StatusBadRequest, ledger.CodeAmountInvalid)
		call(t, h, "POST", "/api/transfers", alice, transfer(ali, ali, 5)).wantError(t, http.StatusBadRequest, ledger.CodeSameAccount)
		call(t, h, "POST", "/api/transfers", alice, transfer(ali, ledger.NewID(), 5)).wantError(t, http.StatusNotFound, ledger.CodeAccountNotFound)
	})
	h.CheckBooks(t)
}

func TestHolds(t *testing.T) {
	h := apitest.New(t, api.Config{})
	alice := h.Token(t, "alice", auth.RoleRenter)
	bob := h.Token(t, "bob", auth.RoleContributor)
	ali := newAccount(t, h, alice, "", ledger.KindRenter)
	bo := newAccount(t, h, bob, "", ledger.KindContributor)
	h.Issue(t, ali, 100*sp)

	hold := transfer(ali, bo, 10*sp)
	hold.Flags, hold.Timeout = ledger.Pending, 3600
	call(t, h, "POST", "/api/transfers", alice, hold).want(t, http.StatusCreated, nil)
	a := account(t, h, alice, ali)
	if a.Balance() != 100*sp || a.Available() != 90*sp || a.DebitsPending != 10*sp {
		t.Fatalf("after hold: %+v", a)
	}

	t.Run("OnlyCreditOwnerPosts", func(t *testing.T) {
		call(t, h, "POST", "/api/transfers/"+hold.ID.String()+"/post", alice, map[string]any{"id": ledger.NewID()}).
			wantError(t, http.StatusForbidden, ledger.CodeForbidden)
	})
	t.Run("VoidHasNoAmount", func(t *testing.T) {
		call(t, h, "POST", "/api/transfers/"+hold.ID.String()+"/void", bob, map[string]any{"id": ledger.NewID(), "amount": 5}).
			wantError(t, http.StatusBadRequest, api.CodeBadRequest)
	})
	t.Run("PartialPost", func(t *testing.T) {
		postID := ledger.NewID()
		var res ledger.TransferResult
		call(t, h, "POST", "/api/transfers/"+hold.ID.String()+"/post", bob, map[string]any{"id": postID, "amount": 4 * sp}).
			want(t, http.StatusCreated, &res)
		if res.Transfer.Amount != 4*sp || res.Transfer.DebitAccountID != ali || res.Transfer.Flags != ledger.PostPending {
			t.Fatalf("post: %+v", res.Transfer)
		}
		// The rest of the hold is released.
		a := account(t, h, alice, ali)
		b := account(t, h, bob, bo)
		if a.Balance() != 96*sp || a.Available() != 96*sp || a.DebitsPending != 0 || b.Balance() != 4*sp || b.CreditsPending != 0 {
			t.Fatalf("after post: alice %+v, bob %+v", a, b)
		}
		// Retrying the post is idempotent; posting again is not.
		call(t, h, "POST", "/api/transfers/"+hold.ID.String()+"/post", bob, map[string]any{"id": postID, "amount": 4 * sp}).
			want(t, http.StatusOK, nil)
		call(t, h, "POST", "/api/transfers/"+hold.ID.String()+"/post", bob, map[string]any{"id": ledger.NewID()}).
			wantError(t, http.StatusUnprocessableEntity, ledger.CodeHoldAlreadyPosted)
	})
	t.Run("Void", func(t *testing.T) {
		hold2 := transfer(ali, bo, 30*sp)
		hold2.Flags = ledger.Pending
		call(t, h, "POST", "/api/transfers", alice, hold2).want(t, http.StatusCreated, nil)
		if a := account(t, h, alice, ali); a.Available() != 66*sp {
			t.Fatalf("after second hold: %+v", a)
		}
		call(t, h, "POST", "/api/transfers/"+hold2.ID.String()+"/post", bob, map[string]any{"id": ledger.NewID(), "amount": 31 * sp}).
			wantError(t, http.StatusUnprocessableEntity, ledger.CodeExceedsPending)
		call(t, h, "POST", "/api/transfers/"+hold2.ID.String()+"/void", bob, map[string]any{"id": ledger.NewID()}).
			want(t, http.StatusCreated, nil)
		if a := account(t, h, alice, ali); a.Balance() != 96*sp || a.Available() != 96*sp {
			t.Fatalf("after void: %+v", a)
		}
		call(t, h, "POST", "/api/transfers/"+hold2.ID.String()+"/void", bob, map[string]any{"id": ledger.NewID()}).
			wantError(t, http.StatusUnprocessableEntity, ledger.CodeHoldAlreadyVoided)
		call(t, h, "POST", "/api/transfers/"+ledger.NewID().String()+"/void", bob, map[string]any{"id": ledger.NewID()}).
			wantError(t, http.StatusNotFound, ledger.CodePendingNotFound)
	})
	h.CheckBooks(t)
}

func TestBatchLinked(t *testing.T) {
	h := apitest.New(t, api.Config{})
	alice := h.Token(t, "alice", auth.RoleRenter)
	ali := newAccount(t, h, alice, "", ledger.KindRenter)
	ali2 := newAccount(t, h, alice, "", ledger.KindRenter)
	bo := newAccount(t, h, h.Operator, "bob", ledger.KindContributor)
	h.Issue(t, ali, 10*sp)

	chain := []ledger.Transfer{transfer(ali, bo, 3*sp), transfer(ali, ali2, 3*sp), transfer(ali, bo, 5*sp)}
	chain[0].Flags, chain[1].Flags = ledger.Linked, ledger.Linked // 11 SP in all: the last fails
	alone := transfer(ali, bo, 2*sp)
	var br api.TransferResults
	call(t, h, "POST", "/api/transfers/batch", alice, map[string]any{"transfers": append(chain, alone)}).want(t, http.StatusOK, &br)
	var codes []string
	for _, r := range br.Results {
		c := "ok"
		if r.Err != nil {
			c = string(r.Err.Code)
		}
		codes = append(codes, c)
	}
	want := []string{"linked_event_failed", "linked_event_failed", "insufficient_funds", "ok"}
	if !slices.Equal(codes, want) {
		t.Fatalf("results %v, want %v", codes, want)
	}
	if got := balances(t, h, ali, ali2, bo); !slices.Equal(got, []ledger.Amount{8 * sp, 0, 2 * sp}) {
		t.Fatalf("balances alice, alice2, bob = %v: the failed chain moved money", got)
	}
	for _, tr := range chain {
		call(t, h, "GET", "/api/transfers/"+tr.ID.String(), h.Operator, nil).wantError(t, http.StatusNotFound, api.CodeTransferNotFound)
	}

	t.Run("ChainOpen", func(t *testing.T) {
		open := transfer(ali, bo, sp)
		open.Flags = ledger.Linked
		var br api.TransferResults
		call(t, h, "POST", "/api/transfers/batch", alice, map[string]any{"transfers": []ledger.Transfer{open}}).want(t, http.StatusOK, &br)
		if br.Results[0].Err == nil || br.Results[0].Err.Code != ledger.CodeLinkedChainOpen {
			t.Fatalf("open chain: %+v", br.Results)
		}
	})
	t.Run("TooMany", func(t *testing.T) {
		ts := make([]ledger.Transfer, ledger.MaxBatch+1)
		for i := range ts {
			ts[i] = transfer(ali, bo, 1)
		}
		call(t, h, "POST", "/api/transfers/batch", alice, map[string]any{"transfers": ts}).
			wantError(t, http.StatusRequestEntityTooLarge, ledger.CodeBatchTooLarge)
	})
	t.Run("FullBatchFits", func(t *testing.T) {
		ts := make([]ledger.Transfer, ledger.MaxBatch)
		for i := range ts {
			ts[i] = transfer(ali, bo, 1)
			ts[i].UserData = strings.Repeat("<", ledger.MaxUserData) // escaped as \u003c: 6 bytes each
		}
		var br api.TransferResults
		call(t, h, "POST", "/api/transfers/batch", alice, map[string]any{"transfers": ts}).want(t, http.StatusOK, &br)
		for i, r := range br.Results {
			if r.Err != nil {
				t.Fatalf("item %d: %v", i, r.Err)
			}
		}
	})
	h.CheckBooks(t)
}

func TestLimits(t *testing.T) {
	h := apitest.New(t, api.Config{RatePerToken: 1, Burst: 3, RatePerIP: 1, BurstPerIP: 3})
	alice := h.Token(t, "alice", auth.RoleRenter)

	t.Run("BodyTooLarge", func(t *testing.T) {
		big := `{"id":"` + ledger.NewID().String() + `","user_data":"` + strings.Repeat("x", 2<<20) + `"}`
		call(t, h, "POST", "/api/transfers", alice, big).wantError(t, http.StatusRequestEntityTooLarge, api.CodeBodyTooLarge)
	})
	t.Run("RateLimited", func(t *testing.T) {
		var last reply
		for range 5 {
			if last = call(t, h, "GET", "/api/whoami", alice, nil); last.status != http.StatusOK {
				break
			}
		}
		last.wantError(t, http.StatusTooManyRequests, api.CodeRateLimited)
		if s, err := strconv.Atoi(last.header.Get("Retry-After")); err != nil || s < 1 {
			t.Fatalf("Retry-After %q", last.header.Get("Retry-After"))
		}
		// Other tokens have their own budget.
		call(t, h, "GET", "/api/whoami", h.Token(t, "bob", auth.RoleRenter), nil).want(t, http.StatusOK, nil)
	})
	t.Run("RateLimitedByIP", func(t *testing.T) {
		var last reply
		for range 5 {
			if last = call(t, h, "GET", "/api/hub", "", nil); last.status != http.StatusOK {
				break
			}
		}
		last.wantError(t, http.StatusTooManyRequests, api.CodeRateLimited)
		if last.header.Get("Retry-After") == "" {
			t.Fatal("no Retry-After")
		}
		call(t, h, "GET", "/healthz", "", nil).want(t, http.StatusOK, nil)
	})
}

func TestUnauthenticated(t *testing.T) {
	h := apitest.New(t, api.Config{})
	for _, tc := range []struct{ name, header string }{
		{"NoToken", ""},
		{"UnknownToken", "Bearer spice_nope"},
		{"NotBearer", "Basic YWxpY2U6c2VjcmV0"},
		{"Empty", "Bearer "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.header != "" {
				hdr = []string{"Authorization", tc.header}
			}
			r := call(t, h, "GET", "/api/whoami", "", nil, hdr...)
			r.wantError(t, http.StatusUnauthorized, api.CodeUnauthenticated)
			if r.header.Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate header")
			}
		})
	}
	t.Run("PublicRoutes", func(t *testing.T) {
		var info api.HubInfo
		call(t, h, "GET", "/api/hub", "", nil).want(t, http.StatusOK, &info)
		if info.LogPublicKey != h.Info.LogPublicKey || info.SystemAccounts["issuance"] != h.Issuance {
			t.Fatalf("hub info %+v", info)
		}
		call(t, h, "GET", "/healthz", "", nil).want(t, http.StatusOK, nil)
	})
}

func TestMalformedRequests(t *testing.T) {
	h := apitest.New(t, api.Config{})
	alice := h.Token(t, "alice", auth.RoleRenter)
	id, a, b := ledger.NewID(), ledger.NewID(), ledger.NewID()
	valid := fmt.Sprintf(`"id":%q,"debit_account_id":%q,"credit_account_id":%q`, id, a, b)
	for _, tc := range []struct {
		name, body, mention string
	}{
		{"FloatAmount", `{` + valid + `,"amount":1.5}`, "amount"},
		{"StringAmount", `{` + valid + `,"amount":"100"}`, "amount"},
		{"OverflowAmount", `{` + valid + `,"amount":99999999999999999999}`, "amount"},
		{"NullAmount", `{` + valid + `,"amount":null}`, "amount"},
		{"MissingAmount", `{` + valid + `}`, "amount: required"},
		{"MissingCredit", fmt.Sprintf(`{"id":%q,"debit_account_id":%q,"amount":1}`, id, a), "credit_account_id: required"},
		{"UnknownField", `{` + valid + `,"amount":1,"memo":"hi"}`, `memo: unknown field`},
		{"DuplicateField", `{` + valid + `,"amount":1,"amount":2}`, "amount: duplicate"},
		{"BadUUID", `{"id":"nope","debit_account_id":"x","credit_account_id":"y","amount":1}`, "id"},
		{"Truncated", `{` + valid + `,"amount":`, "malformed JSON"},
		{"Syntax", `{` + valid + `,"amount":1,}`, "malformed JSON at byte"},
		{"Trailing", `{` + valid + `,"amount":1} {}`, "after the JSON object"},
		{"NotObject", `[1,2]`, "want a JSON object"},
		{"Empty", ``, "empty body"},
		{"Timestamp", `{` + valid + `,"amount":1,"timestamp":5}`, "timestamp: set by the ledger"},
		{"BatchToSingle", `{"transfers":[{` + valid + `,"amount":1},{` + valid + `,"amount":1}]}`, "/api/transfers/batch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := call(t, h, "POST", "/api/transfers", alice, tc.body).wantError(t, http.StatusBadRequest, api.CodeBadRequest)
			if !strings.Contains(e.Message, tc.mention) {
				t.Errorf("message %q does not mention %q", e.Message, tc.mention)
			}
		})
	}
	t.Run("BatchItemNamed", func(t *testing.T) {
		body := `{"transfers":[{` + valid + `,"amount":1},{` + valid + `,"amount":2.5}]}`
		e := call(t, h, "POST", "/api/transfers/batch", alice, body).wantError(t, http.StatusBadRequest, api.CodeBadRequest)
		if !strings.Contains(e.Message, "transfers[1].amount") {
			t.Errorf("message %q does not name transfers[1].amount", e.Message)
		}
	})
	t.Run("BadPathID", func(t *testing.T) {
		call(t, h, "GET", "/api/accounts/42", alice, nil).wantError(t, http.StatusBadRequest, api.CodeBadRequest)
	})
	t.Run("NoRoute", func(t *testing.T) {
		call(t, h, "GET", "/api/nope", alice, nil).wantError(t, http.StatusNotFound, api.CodeNotFound)
		call(t, h, "PUT", "/api/transfers", alice, "{}").wantError(t, http.StatusMethodNotAllowed, api.CodeMethodNotAllowed)
	})
}

func TestRequestID(t *testing.T) {
	h := apitest.New(t, api.Config{})
	r := call(t, h, "GET", "/api/whoami", "", nil, "X-Request-ID", "trace-42")
	if e := r.wantError(t, http.StatusUnauthorized, api.CodeUnauthenticated); e.RequestID != "trace-42" {
		t.Fatalf("request_id %q, want the client's", e.RequestID)
	}
	// A request ID that could forge log lines is replaced.
	r = call(t, h, "GET", "/api/whoami", "", nil, "X-Request-ID", "a b\tc")
	if e := r.wantError(t, http.StatusUnauthorized, api.CodeUnauthenticated); e.RequestID == "a b\tc" || len(e.RequestID) < 16 {
		t.Fatalf("request_id %q", e.RequestID)
	}
}

func TestInternalError(t *testing.T) {
	h := apitest.New(t, api.Config{})
	alice := h.Token(t, "alice", auth.RoleRenter)
	h.Store.Pool().Close() // the database goes away
	r := call(t, h, "GET", "/api/whoami", alice, nil)
	e := r.wantError(t, http.StatusInternalServerError, api.CodeInternal)
	if e.Message != "internal error" {
		t.Fatalf("internal error message %q leaks details", e.Message)
	}
}

func TestTokens(t *testing.T) {
	h := apitest.New(t, api.Config{})
	var tok api.Token
	call(t, h, "POST", "/api/tokens", h.Operator, api.TokenRequest{Principal: "carol", Role: auth.RoleRenter, Name: "laptop"}).
		want(t, http.StatusCreated, &tok)
	if !strings.HasPrefix(tok.Secret, auth.TokenPrefix) || tok.Principal != "carol" {
		t.Fatalf("token %+v", tok)
	}
	var who api.Whoami
	call(t, h, "GET", "/api/whoami", tok.Secret, nil).want(t, http.StatusOK, &who)
	if who != (auth.Principal{Name: "carol", Role: auth.RoleRenter}) {
		t.Fatalf("whoami %+v", who)
	}

	t.Run("RenterCannotCreate", func(t *testing.T) {
		call(t, h, "POST", "/api/tokens", tok.Secret, api.TokenRequest{Principal: "carol", Role: auth.RoleOperator}).
			wantError(t, http.StatusForbidden, ledger.CodeForbidden)
	})
	t.Run("Invalid", func(t *testing.T) {
		call(t, h, "POST", "/api/tokens", h.Operator, api.TokenRequest{Principal: "carol", Role: "king"}).
			wantError(t, http.StatusBadRequest, ledger.CodeInvalid)
		call(t, h, "POST", "/api/tokens", h.Operator, api.TokenRequest{Principal: "Carol!", Role: auth.RoleRenter}).
			wantError(t, http.StatusBadRequest, ledger.CodeInvalid)
		call(t, h, "POST", "/api/tokens", h.Operator, `{"principal":"carol","role":"renter","admin":true}`).
			wantError(t, http.StatusBadRequest, api.CodeBadRequest)
	})
	t.Run("RevokeOther", func(t *testing.T) {
		var other api.Token
		call(t, h, "POST", "/api/tokens", h.Operator, api.TokenRequest{Principal: "carol", Role: auth.RoleRenter}).
			want(t, http.StatusCreated, &other)
		call(t, h, "DELETE", "/api/tokens", h.Operator, api.RevokeRequest{Secret: other.Secret}).want(t, http.StatusNoContent, nil)
		call(t, h, "GET", "/api/whoami", other.Secret, nil).wantError(t, http.StatusUnauthorized, api.CodeUnauthenticated)
		call(t, h, "DELETE", "/api/tokens", h.Operator, api.RevokeRequest{Secret: other.Secret}).wantError(t, http.StatusNotFound, api.CodeNotFound)
	})
	t.Run("RevokeOwn", func(t *testing.T) {
		call(t, h, "DELETE", "/api/tokens", tok.Secret, nil).want(t, http.StatusNoContent, nil)
		call(t, h, "GET", "/api/whoami", tok.Secret, nil).wantError(t, http.StatusUnauthorized, api.CodeUnauthenticated)
	})
}

func TestProofs(t *testing.T) {
	h := apitest.New(t, api.Config{})
	alice := h.Token(t, "alice", auth.RoleRenter)
	ali := newAccount(t, h, alice, "", ledger.KindRenter)
	h.Issue(t, ali, 10*sp)
	pay := transfer(ali, h.Issuance, sp)
	call(t, h, "POST", "/api/transfers", alice, pay).want(t, http.StatusCreated, nil)
	first := h.WaitCheckpoint(t, h.LogSize(t))

	var p api.InclusionProof
	call(t, h, "GET", "/api/transfers/"+pay.ID.String()+"/proof", alice, nil).want(t, http.StatusOK, &p)
	cp, err := translog.VerifyCheckpoint([]byte(p.Checkpoint), h.Info.LogPublicKey)
	if err != nil {
		t.Fatal(err)
	}
	var got ledger.Transfer
	call(t, h, "GET", "/api/transfers/"+pay.ID.String(), alice, nil).want(t, http.StatusOK, &got)
	leaf := ledger.AppendTransferEntry(nil, &got)
	if string(leaf) != string(p.Leaf) || p.LogIndex != got.LogIndex || p.TreeSize != cp.N || string(p.RootHash) != string(cp.Hash[:]) {
		t.Fatalf("proof %+v does not match transfer %+v / checkpoint %+v", p, got, cp.Tree)
	}
	if err := tlog.CheckRecord(toHashes(p.Proof), cp.N, cp.Hash, p.LogIndex, tlog.RecordHash(leaf)); err != nil {
		t.Fatalf("inclusion proof does not verify: %v", err)
	}

	// More entries, a new checkpoint, and a proof that the old one is a prefix.
	for range 5 {
		h.Issue(t, ali, sp)
	}
	second := h.WaitCheckpoint(t, h.LogSize(t))
	var c api.ConsistencyProof
	call(t, h, "GET", fmt.Sprintf("/api/log/consistency?old=%d", first.N), "", nil).want(t, http.StatusOK, &c)
	cp2, err := translog.VerifyCheckpoint([]byte(c.Checkpoint), h.Info.LogPublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if c.New != second.N || cp2.N != second.N {
		t.Fatalf("consistency %d..%d, checkpoint %d, want new %d", c.Old, c.New, cp2.N, second.N)
	}
	if err := tlog.CheckTree(toHashes(c.Proof), cp2.N, cp2.Hash, first.N, first.Hash); err != nil {
		t.Fatalf("consistency proof does not verify: %v", err)
	}

	t.Run("OlderTreeSize", func(t *testing.T) {
		var p api.InclusionProof
		call(t, h, "GET", fmt.Sprintf("/api/transfers/%s/proof?tree_size=%d", pay.ID, first.N), alice, nil).want(t, http.StatusOK, &p)
		if err := tlog.CheckRecord(toHashes(p.Proof), first.N, first.Hash, p.LogIndex, tlog.RecordHash(p.Leaf)); err != nil {
			t.Fatalf("proof against the first checkpoint: %v", err)
		}
	})
	t.Run("Errors", func(t *testing.T) {
		call(t, h, "GET", fmt.Sprintf("/api/transfers/%s/proof?tree_size=%d", pay.ID, second.N+1), alice, nil).
			wantError(t, http.StatusServiceUnavailable, api.CodeNotPublished)
		call(t, h, "GET", fmt.Sprintf("/api/transfers/%s/proof?tree_size=%d", pay.ID, p.LogIndex), alice, nil).
			wantError(t, http.StatusBadRequest, api.CodeBadRequest)
		call(t, h, "GET", "/api/log/consistency?old=5&new=2", "", nil).wantError(t, http.StatusBadRequest, api.CodeBadRequest)
		call(t, h, "GET", "/api/log/consistency", "", nil).wantError(t, http.StatusBadRequest, api.CodeBadRequest)
		bob := h.Token(t, "bob", auth.RoleRenter)
		call(t, h, "GET", "/api/transfers/"+pay.ID.String()+"/proof", bob, nil).wantError(t, http.StatusNotFound, api.CodeTransferNotFound)
	})
	t.Run("LogMounted", func(t *testing.T) {
		r := call(t, h, "GET", "/log/checkpoint", "", nil)
		r.want(t, http.StatusOK, nil)
		if _, err := translog.VerifyCheckpoint(r.body, h.Info.LogPublicKey); err != nil {
			t.Fatalf("/log/checkpoint: %v\n%s", err, r.body)
		}
	})
	h.CheckBooks(t)
}

func toHashes(bs [][]byte) []tlog.Hash {
	out := make([]tlog.Hash, len(bs))
	for i, b := range bs {
		copy(out[i][:], b)
	}
	return out
}

func TestMetrics(t *testing.T) {
	h := apitest.New(t, api.Config{})
	alice := h.Token(t, "alice", auth.RoleRenter)
	ali := newAccount(t, h, alice, "", ledger.KindRenter)
	call(t, h, "POST", "/api/transfers", alice, transfer(ali, h.Issuance, sp)).wantError(t, http.StatusUnprocessableEntity, ledger.CodeInsufficientFunds)
	r := call(t, h, "GET", "/metrics", "", nil)
	r.want(t, http.StatusOK, nil)
	for _, want := range []string{
		`spiceroute_api_requests_total{method="POST",route="/api/transfers",status="422"} 1`,
		`spiceroute_api_ledger_results_total{kind="transfer",outcome="insufficient_funds"} 1`,
		`spiceroute_api_ledger_results_total{kind="account",outcome="ok"} 1`,
		`spiceroute_api_request_duration_seconds_count{method="POST",route="/api/accounts"} 1`,
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestStatusTable(t *testing.T) {
	for code, want := range map[string]int{
		"invalid": 400, "id_zero": 400, "amount_invalid": 400, "same_account": 400, "bad_request": 400,
		"unauthenticated": 401, "forbidden": 403,
		"not_found": 404, "account_not_found": 404, "transfer_not_found": 404, "pending_not_found": 404, "job_not_found": 404,
		"id_conflict": 409, "body_too_large": 413,
		"insufficient_funds": 422, "hold_expired": 422, "hold_already_posted": 422, "exceeds_pending_amount": 422,
		"pending_not_pending": 422, "pending_mismatch": 422, "linked_event_failed": 422, "linked_chain_open": 422,
		"account_closed": 422, "overflow": 422, "hold_new_thing": 422,
		"rate_limited": 429, "unavailable": 503, "internal": 500, "something_new": 400,
	} {
		if got := api.Status(coded.Code(code)); got != want {
			t.Errorf("Status(%s) = %d, want %d", code, got, want)
		}
	}
}

func TestErrorReplyShape(t *testing.T) {
	h := apitest.New(t, api.Config{})
	r := call(t, h, "GET", "/api/whoami", "", nil)
	var raw map[string]map[string]string
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	e := raw["error"]
	if len(raw) != 1 || e["code"] != "unauthenticated" || e["message"] == "" || e["request_id"] == "" {
		t.Fatalf("error reply %s", r.body)
	}
}
