package api_test

import (
	"bytes"
	"encoding/csv"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moov-io/iso20022/pkg/document"
	"github.com/moov-io/iso20022/pkg/pain_v10"

	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/api/apitest"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/payout"
)

func TestPayouts(t *testing.T) {
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	h := apitest.New(t, api.Config{}, apitest.WithPayouts(payout.Config{RateCents: 100, Dir: t.TempDir(),
		Debtor: payout.Party{Name: "Spice Co-op", IBAN: "DE89370400440532013000"}}, func() time.Time { return now }))
	alice := h.Token(t, "alice", auth.RoleContributor)
	bob := h.Token(t, "bob", auth.RoleContributor)
	rita := h.Token(t, "rita", auth.RoleRenter)
	aliceAcct := newAccount(t, h, alice, "", ledger.KindContributor)
	h.Issue(t, aliceAcct, 12*sp+3)
	bobAcct := newAccount(t, h, bob, "", ledger.KindContributor)
	h.Issue(t, bobAcct, 6*sp) // above his threshold, but withheld

	good := map[string]any{"legal_name": "Alice Müller", "iban": "DE89 3704 0044 0532 0130 00", "bic": "COBADEFFXXX", "threshold": 10 * sp}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for key, val := range good {
			m[key] = val
		}
		m[k] = v
		return m
	}
	t.Run("ProfileRejected", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			body any
			code coded.Code
		}{
			{"BadIBAN", with("iban", "DE89370400440532013001"), "invalid_iban"},
			{"BadBIC", with("bic", "COBADE"), "invalid_bic"},
			{"ThresholdBelowOneSP", with("threshold", sp-1), "invalid_threshold"},
			{"ThresholdAsFloat", `{"legal_name": "A", "iban": "DE89370400440532013000", "threshold": 1.5}`, "bad_request"},
			{"NoName", with("legal_name", ""), "invalid_name"},
			{"UnknownField", with("iban_typo", "x"), "bad_request"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				call(t, h, "PUT", "/api/payouts/profile", alice, tc.body).wantError(t, http.StatusBadRequest, tc.code)
			})
		}
		call(t, h, "PUT", "/api/payouts/profile", rita, good).wantError(t, http.StatusForbidden, ledger.CodeForbidden)
		call(t, h, "PUT", "/api/payouts/profile", h.Operator, good).wantError(t, http.StatusForbidden, ledger.CodeForbidden)
		call(t, h, "GET", "/api/payouts/profile", alice, nil).wantError(t, http.StatusNotFound, payout.CodeProfileNotFound)
	})

	var prof payout.Profile
	call(t, h, "PUT", "/api/payouts/profile", alice, good).want(t, http.StatusOK, &prof)
	if prof.Owner != "alice" || prof.IBAN != "DE89370400440532013000" || prof.Threshold != 10*sp {
		t.Fatalf("profile %+v", prof)
	}
	call(t, h, "PUT", "/api/payouts/profile", bob, map[string]any{"legal_name": "Bob", "iban": "NL91ABNA0417164300", "threshold": 5 * sp}).want(t, http.StatusOK, nil)

	t.Run("OthersProfileNotFound", func(t *testing.T) {
		call(t, h, "GET", "/api/payouts/profile?owner=alice", bob, nil).wantError(t, http.StatusNotFound, payout.CodeProfileNotFound)
		call(t, h, "PUT", "/api/payouts/profile?owner=alice", bob, good).wantError(t, http.StatusNotFound, payout.CodeProfileNotFound)
		var got payout.Profile
		call(t, h, "GET", "/api/payouts/profile?owner=alice", h.Operator, nil).want(t, http.StatusOK, &got)
		if got.LegalName != "Alice Müller" {
			t.Errorf("operator reads %+v", got)
		}
		call(t, h, "GET", "/api/payouts/profile", alice, nil).want(t, http.StatusOK, &got)
		if got.IBAN != prof.IBAN {
			t.Errorf("alice reads %+v", got)
		}
	})

	t.Run("RunsAreForOperators", func(t *testing.T) {
		call(t, h, "POST", "/api/payouts/runs", alice, map[string]string{"period": "2026-11"}).wantError(t, http.StatusForbidden, ledger.CodeForbidden)
		call(t, h, "GET", "/api/payouts/runs", alice, nil).wantError(t, http.StatusForbidden, ledger.CodeForbidden)
		call(t, h, "POST", "/api/payouts/withholds", alice, map[string]string{"owner": "bob", "reason": "x"}).wantError(t, http.StatusForbidden, ledger.CodeForbidden)
		for _, bad := range []string{"2026-13", "26-11", "", "2027-01"} {
			call(t, h, "POST", "/api/payouts/runs", h.Operator, map[string]string{"period": bad}).wantError(t, http.StatusBadRequest, payout.CodeInvalidPeriod)
		}
		call(t, h, "GET", "/api/payouts/runs/2026-11", h.Operator, nil).wantError(t, http.StatusNotFound, payout.CodeRunNotFound)
		call(t, h, "GET", "/api/payouts/runs/2026-11/batch.xml", h.Operator, nil).wantError(t, http.StatusNotFound, payout.CodeRunNotFound)
		call(t, h, "GET", "/api/payouts/runs/nov/batch.xml", h.Operator, nil).wantError(t, http.StatusBadRequest, payout.CodeInvalidPeriod)
	})

	var w payout.Withhold
	call(t, h, "POST", "/api/payouts/withholds", h.Operator, map[string]string{"owner": "bob", "period": "2026-11", "reason": "spot check failed"}).want(t, http.StatusCreated, &w)
	call(t, h, "POST", "/api/payouts/withholds", h.Operator, map[string]string{"owner": "bob", "reason": ""}).wantError(t, http.StatusBadRequest, ledger.CodeInvalid)

	var run payout.Run
	call(t, h, "POST", "/api/payouts/runs", h.Operator, map[string]string{"period": "2026-11"}).want(t, http.StatusOK, &run)
	if run.State != payout.Complete || run.Paid != 1 || run.TotalCents != 1200 || len(run.Payouts) != 2 {
		t.Fatalf("run %+v", run)
	}
	if b := balances(t, h, aliceAcct, bobAcct, h.PayoutAccount); b[0] != 3 || b[1] != 6*sp || b[2] != 12*sp {
		t.Fatalf("balances after the run: %v", b)
	}
	var again payout.Run
	call(t, h, "POST", "/api/payouts/runs", h.Operator, map[string]string{"period": "2026-11"}).want(t, http.StatusOK, &again)
	if again.Batch != run.Batch || [2]ledger.Amount(balances(t, h, aliceAcct, h.PayoutAccount)) != [2]ledger.Amount{3, 12 * sp} {
		t.Fatalf("second run %+v", again)
	}
	h.CheckBooks(t)

	t.Run("ContributorsSeeOnlyTheirOwn", func(t *testing.T) {
		var mine api.PayoutsReply
		call(t, h, "GET", "/api/payouts", alice, nil).want(t, http.StatusOK, &mine)
		if len(mine.Payouts) != 1 || mine.Payouts[0].Owner != "alice" || mine.Payouts[0].State != payout.Paid || mine.Payouts[0].Cents != 1200 {
			t.Fatalf("alice's payouts %+v", mine)
		}
		call(t, h, "GET", "/api/payouts", bob, nil).want(t, http.StatusOK, &mine)
		if len(mine.Payouts) != 1 || mine.Payouts[0].State != payout.Withheld || mine.Payouts[0].Detail != "spot check failed" {
			t.Fatalf("bob's payouts %+v", mine)
		}
		call(t, h, "GET", "/api/payouts?owner=alice", bob, nil).wantError(t, http.StatusNotFound, api.CodeNotFound)
		call(t, h, "GET", "/api/payouts?owner=bob", h.Operator, nil).want(t, http.StatusOK, &mine)
		if len(mine.Payouts) != 1 || mine.Payouts[0].Owner != "bob" {
			t.Fatalf("operator reads bob's: %+v", mine)
		}
		call(t, h, "GET", "/api/payouts/runs/2026-11/batch.csv", alice, nil).wantError(t, http.StatusForbidden, ledger.CodeForbidden)
	})

	t.Run("BatchFiles", func(t *testing.T) {
		r := call(t, h, "GET", "/api/payouts/runs/2026-11/batch.xml", h.Operator, nil)
		r.want(t, http.StatusOK, nil)
		doc, err := document.ParseIso20022Document(r.body)
		if err != nil {
			t.Fatal(err)
		}
		msg := doc.InspectMessage().(*pain_v10.CustomerCreditTransferInitiationV10)
		tx := msg.PmtInf[0].CdtTrfTxInf
		if len(tx) != 1 || string(*tx[0].Cdtr.Nm) != "Alice Müller" || tx[0].CdtrAcct.Id.IBAN != "DE89370400440532013000" ||
			tx[0].Amt.InstdAmt.Value != 12.00 || msg.GrpHdr.CtrlSum != 12.00 || string(tx[0].PmtId.EndToEndId) != run.Payouts[0].EndToEndID {
			t.Errorf("pain.001 from the API:\n%s", r.body)
		}
		if !strings.Contains(r.header.Get("Content-Disposition"), "payout-2026-11-") {
			t.Errorf("Content-Disposition %q", r.header.Get("Content-Disposition"))
		}
		r = call(t, h, "GET", "/api/payouts/runs/2026-11/batch.csv", h.Operator, nil)
		r.want(t, http.StatusOK, nil)
		rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
		if err != nil || len(rows) != 2 || rows[1][0] != "Alice Müller" || rows[1][3] != "12.00" || rows[1][4] != "12000000" ||
			rows[1][6] != run.Payouts[0].Transfers[0].ID.String() {
			t.Errorf("CSV from the API: %q, %v", rows, err)
		}
		var runs api.PayoutRunsReply
		call(t, h, "GET", "/api/payouts/runs", h.Operator, nil).want(t, http.StatusOK, &runs)
		if len(runs.Runs) != 1 || runs.Runs[0].Batch != run.Batch || len(runs.Runs[0].Payouts) != 0 {
			t.Errorf("runs %+v", runs)
		}
	})

	t.Run("ReleaseWithhold", func(t *testing.T) {
		var ws api.WithholdsReply
		call(t, h, "GET", "/api/payouts/withholds", h.Operator, nil).want(t, http.StatusOK, &ws)
		if len(ws.Withholds) != 1 || ws.Withholds[0].ID != w.ID || ws.Withholds[0].Period.String() != "2026-11" {
			t.Fatalf("withholds %+v", ws)
		}
		var rel payout.Withhold
		call(t, h, "POST", "/api/payouts/withholds/"+strconv.FormatInt(w.ID, 10)+"/release", h.Operator, nil).want(t, http.StatusOK, &rel)
		if rel.ReleasedAt == nil || rel.ReleasedBy != "op" {
			t.Errorf("released %+v", rel)
		}
		call(t, h, "POST", "/api/payouts/withholds/"+strconv.FormatInt(w.ID, 10)+"/release", h.Operator, nil).wantError(t, http.StatusNotFound, payout.CodeWithholdNotFound)
		call(t, h, "GET", "/api/payouts/withholds", h.Operator, nil).want(t, http.StatusOK, &ws)
		if len(ws.Withholds) != 0 {
			t.Errorf("active withholds after release: %+v", ws)
		}
	})
}
