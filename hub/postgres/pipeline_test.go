package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/postgres"
	"github.com/spiceroute/spiceroute/hub/postgres/pgtest"
)

// A small commit is sent as one pipeline: it is still one transaction. A
// statement that fails, before or after others that succeeded, leaves
// nothing of the commit behind, and the books as they were.
func TestPipelinedCommitIsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	st := postgres.New(pgtest.MustOpenDB(t))
	l, err := ledger.Open(ctx, st, ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	issuance, renter := ledger.NewID(), ledger.NewID()
	res, err := l.CreateAccounts(ctx, ledger.System, []ledger.Account{
		{ID: issuance, Owner: "hub", Kind: ledger.KindIssuance, Flags: ledger.AccountAllowNegative},
		{ID: renter, Owner: "alice", Kind: ledger.KindRenter}})
	if err != nil || res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("accounts: %v %+v", err, res)
	}
	// A transfer through the ledger: a commit small enough to pipeline.
	first := ledger.Transfer{ID: ledger.NewID(), DebitAccountID: issuance, CreditAccountID: renter, Amount: 5 * ledger.MicroPerSpice}
	tr, err := l.CreateTransfers(ctx, ledger.System, []ledger.Transfer{first})
	if err != nil || tr[0].Err != nil {
		t.Fatalf("transfer: %v %+v", err, tr)
	}
	stored, err := st.Transfer(ctx, first.ID)
	if err != nil || stored.Amount != first.Amount || stored.LogIndex <= 0 {
		t.Fatalf("the pipelined transfer was not stored: %+v %v", stored, err)
	}
	l.Close()
	balance := func() ledger.Account {
		t.Helper()
		a, err := st.Account(ctx, renter)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	before := balance()
	if before.CreditsPosted != first.Amount {
		t.Fatalf("alice's credits %s after a transfer of %s", before.CreditsPosted, first.Amount)
	}

	// The first statement fails (a log index taken): the balances of the
	// same commit are not written.
	dup := ledger.Transfer{ID: ledger.NewID(), DebitAccountID: issuance, CreditAccountID: renter, Amount: 7, LogIndex: stored.LogIndex}
	moved := before
	moved.CreditsPosted += 7
	err = st.Commit(ctx, &ledger.Commit{Transfers: []ledger.Transfer{dup}, Balances: []ledger.Account{moved}})
	if err == nil {
		t.Fatal("a transfer with a taken log index was committed")
	}
	if got := balance(); got.CreditsPosted != before.CreditsPosted {
		t.Fatalf("a failed commit moved alice's credits from %s to %s", before.CreditsPosted, got.CreditsPosted)
	}

	// A later statement fails (a balance for an account that does not
	// exist): the transfer the first statement inserted is rolled back.
	orphan := ledger.Transfer{ID: ledger.NewID(), DebitAccountID: issuance, CreditAccountID: renter, Amount: 7, LogIndex: stored.LogIndex + 1000}
	ghost := ledger.Account{ID: ledger.NewID()}
	err = st.Commit(ctx, &ledger.Commit{Transfers: []ledger.Transfer{orphan}, Balances: []ledger.Account{moved, ghost}})
	if err == nil || !strings.Contains(err.Error(), "balance update missed an account: 1 of 2 updated") {
		t.Fatalf("a balance update for a missing account: %v", err)
	}
	if _, err := st.Transfer(ctx, orphan.ID); err == nil {
		t.Fatal("the transfer of a failed commit was kept")
	}
	if got := balance(); got.CreditsPosted != before.CreditsPosted {
		t.Fatalf("a failed commit moved alice's credits from %s to %s", before.CreditsPosted, got.CreditsPosted)
	}
}
