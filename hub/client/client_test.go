package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/api/apitest"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/client"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/postgres/pgtest"
	"github.com/spiceroute/spiceroute/hub/translog"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const sp = ledger.MicroPerSpice

func TestClient(t *testing.T) {
	ctx := context.Background()
	h := apitest.New(t, api.Config{})
	op := client.New(h.URL, h.Operator)
	tok, err := op.CreateToken(ctx, "alice", auth.RoleRenter, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	alice := client.New(h.URL, tok.Secret)
	bobTok, err := op.CreateToken(ctx, "bob", auth.RoleContributor, "")
	if err != nil {
		t.Fatal(err)
	}
	bob := client.New(h.URL, bobTok.Secret)

	who, err := alice.Whoami(ctx)
	if err != nil || who != (auth.Principal{Name: "alice", Role: auth.RoleRenter}) {
		t.Fatalf("whoami: %+v, %v", who, err)
	}
	info, err := client.New(h.URL, "").Hub(ctx)
	if err != nil || info.LogPublicKey != h.Info.LogPublicKey {
		t.Fatalf("hub: %+v, %v", info, err)
	}

	ali := ledger.Account{ID: ledger.NewID(), Kind: ledger.KindRenter}
	ar, err := alice.CreateAccount(ctx, ali)
	if err != nil || ar.Existed || ar.Account.Owner != "alice" {
		t.Fatalf("create account: %+v, %v", ar, err)
	}
	if ar, err = alice.CreateAccount(ctx, ali); err != nil || !ar.Existed {
		t.Fatalf("account retry: %+v, %v", ar, err)
	}
	bo := ledger.Account{ID: ledger.NewID(), Kind: ledger.KindContributor}
	if _, err := bob.CreateAccount(ctx, bo); err != nil {
		t.Fatal(err)
	}

	issue := ledger.Transfer{ID: ledger.NewID(), DebitAccountID: h.Issuance, CreditAccountID: ali.ID, Amount: 50 * sp}
	res, err := op.CreateTransfer(ctx, issue)
	if err != nil || res.Existed || res.Transfer.LogIndex == 0 {
		t.Fatalf("issue: %+v, %v", res, err)
	}
	// Resending the committed transfer as returned is a retry.
	again, err := op.CreateTransfer(ctx, res.Transfer)
	if err != nil || !again.Existed || again.Transfer != res.Transfer {
		t.Fatalf("retry: %+v, %v", again, err)
	}

	t.Run("CodedErrors", func(t *testing.T) {
		_, err := alice.CreateTransfer(ctx, ledger.Transfer{ID: ledger.NewID(), DebitAccountID: ali.ID, CreditAccountID: bo.ID, Amount: 51 * sp})
		if coded.CodeOf(err) != ledger.CodeInsufficientFunds || client.StatusOf(err) != http.StatusUnprocessableEntity {
			t.Fatalf("overdraft: %v (status %d)", err, client.StatusOf(err))
		}
		var ce *client.Error
		if !errors.As(err, &ce) || ce.RequestID == "" {
			t.Fatalf("no request ID in %#v", err)
		}
		_, err = alice.Account(ctx, bo.ID)
		if coded.CodeOf(err) != api.CodeAccountNotFound || client.StatusOf(err) != http.StatusNotFound {
			t.Fatalf("other's account: %v", err)
		}
		_, err = client.New(h.URL, "spice_wrong").Whoami(ctx)
		if coded.CodeOf(err) != api.CodeUnauthenticated {
			t.Fatalf("bad token: %v", err)
		}
	})

	t.Run("BatchAndHolds", func(t *testing.T) {
		hold := ledger.Transfer{ID: ledger.NewID(), DebitAccountID: ali.ID, CreditAccountID: bo.ID, Amount: 10 * sp, Flags: ledger.Pending}
		pay := ledger.Transfer{ID: ledger.NewID(), DebitAccountID: ali.ID, CreditAccountID: bo.ID, Amount: 5 * sp}
		rs, err := alice.CreateTransfers(ctx, []ledger.Transfer{hold, pay})
		if err != nil || len(rs) != 2 || rs[0].Err != nil || rs[1].Err != nil {
			t.Fatalf("batch: %+v, %v", rs, err)
		}
		post, err := bob.PostHold(ctx, hold.ID, ledger.NewID(), 6*sp)
		if err != nil || post.Transfer.Amount != 6*sp {
			t.Fatalf("post: %+v, %v", post, err)
		}
		hold2 := ledger.Transfer{ID: ledger.NewID(), DebitAccountID: ali.ID, CreditAccountID: bo.ID, Amount: sp, Flags: ledger.Pending}
		if _, err := alice.CreateTransfer(ctx, hold2); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.VoidHold(ctx, hold2.ID, ledger.NewID()); err != nil {
			t.Fatal(err)
		}
		a, err := alice.Account(ctx, ali.ID)
		if err != nil || a.Balance() != 39*sp || a.Available() != 39*sp {
			t.Fatalf("alice: %+v, %v", a, err)
		}
		list, err := alice.Accounts(ctx, "")
		if err != nil || len(list) != 1 || list[0].ID != ali.ID {
			t.Fatalf("accounts: %+v, %v", list, err)
		}
		ts, err := bob.AccountTransfers(ctx, bo.ID, 2)
		if err != nil || len(ts) != 2 || ts[0].Flags != ledger.VoidPending {
			t.Fatalf("transfers of bob: %+v, %v", ts, err)
		}
		got, err := bob.Transfer(ctx, pay.ID)
		if err != nil || got.Amount != 5*sp {
			t.Fatalf("transfer: %+v, %v", got, err)
		}
	})

	t.Run("Proofs", func(t *testing.T) {
		first := h.WaitCheckpoint(t, h.LogSize(t))
		tr, err := alice.Transfer(ctx, issue.ID)
		if err != nil {
			t.Fatal(err)
		}
		p, err := alice.TransferProof(ctx, issue.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.VerifyInclusion(p, tr, info.LogPublicKey, nil); err != nil {
			t.Fatalf("verify: %v", err)
		}
		forged := tr
		forged.Amount++
		if _, err := client.VerifyInclusion(p, forged, info.LogPublicKey, nil); err == nil {
			t.Fatal("a changed transfer verified")
		}
		bad := p
		bad.Proof = append([][]byte(nil), p.Proof...)
		bad.Proof[0] = append([]byte(nil), p.Proof[0]...)
		bad.Proof[0][3] ^= 1
		if _, err := client.VerifyInclusion(bad, tr, info.LogPublicKey, nil); err == nil {
			t.Fatal("a proof with a flipped bit verified")
		}
		_, otherKey, err := translog.GenerateKey(apitest.Origin)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.VerifyInclusion(p, tr, otherKey, nil); err == nil {
			t.Fatal("a checkpoint verified with another key")
		}

		h.Issue(t, ali.ID, sp)
		second := h.WaitCheckpoint(t, first.N+1)
		c, err := client.New(h.URL, "").Consistency(ctx, first.N, 0)
		if err != nil || c.Old != first.N || c.New != second.N || len(c.Proof) == 0 {
			t.Fatalf("consistency: %+v, %v", c, err)
		}
		old, err := alice.TransferProof(ctx, issue.ID, first.N)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.VerifyInclusion(old, tr, info.LogPublicKey, &first); err != nil {
			t.Fatalf("verify against the older tree: %v", err)
		}
	})

	t.Run("RevokeOwn", func(t *testing.T) {
		tmp, err := op.CreateToken(ctx, "alice", auth.RoleRenter, "tmp")
		if err != nil {
			t.Fatal(err)
		}
		c := client.New(h.URL, tmp.Secret)
		if err := c.RevokeToken(ctx, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Whoami(ctx); coded.CodeOf(err) != api.CodeUnauthenticated {
			t.Fatalf("revoked token: %v", err)
		}
	})
	h.CheckBooks(t)
}

func TestRateLimit(t *testing.T) {
	ctx := context.Background()
	h := apitest.New(t, api.Config{RatePerToken: 2, Burst: 1})
	c := client.New(h.URL, h.Token(t, "alice", auth.RoleRenter))
	var err error
	for range 3 {
		if _, err = c.Whoami(ctx); err != nil {
			break
		}
	}
	if coded.CodeOf(err) != api.CodeRateLimited || client.StatusOf(err) != http.StatusTooManyRequests || client.RetryAfterOf(err) < time.Second {
		t.Fatalf("want rate_limited with Retry-After, got %v (retry after %v)", err, client.RetryAfterOf(err))
	}

	retrying := client.New(h.URL, h.Token(t, "bob", auth.RoleRenter), client.WithRateLimitRetries(3, 5*time.Second))
	for i := range 3 {
		if _, err := retrying.Whoami(ctx); err != nil {
			t.Fatalf("request %d with retries: %v", i, err)
		}
	}
}

func TestTransportErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("NotTheAPI", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
		}))
		defer srv.Close()
		_, err := client.New(srv.URL, "x").Whoami(ctx)
		if coded.CodeOf(err) != ledger.CodeUnavailable || client.StatusOf(err) != http.StatusBadGateway {
			t.Fatalf("proxy error page: %v", err)
		}
	})
	t.Run("Canceled", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}))
		defer srv.Close()
		ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if _, err := client.New(srv.URL, "x").Whoami(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("want the context's error, got %v", err)
		}
	})
	t.Run("Timeout", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}))
		defer srv.Close()
		if _, err := client.New(srv.URL, "x", client.WithTimeout(50*time.Millisecond)).Whoami(ctx); err == nil {
			t.Fatal("no timeout")
		}
	})
	t.Run("BadAddress", func(t *testing.T) {
		if _, err := client.New("ftp://x", "").Hub(ctx); err == nil {
			t.Fatal("ftp address accepted")
		}
		if got := client.New("127.0.0.1:7070/", "").Address(); got != "http://127.0.0.1:7070" {
			t.Fatalf("address %q", got)
		}
	})
}
