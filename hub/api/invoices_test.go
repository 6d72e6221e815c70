package api_test

import (
	"bytes"
	"context"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/api/apitest"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/invoice"
	"github.com/spiceroute/spiceroute/hub/market"
)

func TestInvoices(t *testing.T) {
	h := apitest.New(t, api.Config{})
	alice := h.Token(t, "alice", auth.RoleRenter)
	bob := h.Token(t, "bob", auth.RoleRenter)
	lines, _ := market.DefaultPrices.Breakdown(market.Resources{CPUMHz: 2000, MemoryMB: 1024}, 2*time.Hour)
	inv := &invoice.Invoice{Kind: invoice.RenterInvoice, Hub: "test", Party: "alice", Job: "render", IssuedAt: time.Now(), Commission: 10_000}
	for _, l := range lines {
		inv.Lines = append(inv.Lines, invoice.Line{Allocation: "alloc-1", Cost: l})
	}
	if err := h.Store.IssueInvoice(context.Background(), inv); err != nil {
		t.Fatal(err)
	}
	path := "/api/invoices/1"

	var got invoice.Invoice
	call(t, h, "GET", path, alice, nil).want(t, http.StatusOK, &got)
	if got.Number != 1 || got.Total != 180_000 || len(got.Lines) != 2 {
		t.Fatalf("invoice JSON: %+v", got)
	}
	html := call(t, h, "GET", path+"?format=html", alice, nil)
	html.want(t, http.StatusOK, nil)
	if !strings.Contains(string(html.body), "Total paid") || !strings.Contains(string(html.body), "0.180000 SP") {
		t.Fatalf("invoice HTML lacks the total:\n%s", html.body)
	}
	pdf := call(t, h, "GET", path, alice, nil, "Accept", "application/pdf")
	pdf.want(t, http.StatusOK, nil)
	if pdf.header.Get("Content-Type") != "application/pdf" {
		t.Fatalf("content type %q", pdf.header.Get("Content-Type"))
	}
	cmd := exec.Command("pdftotext", "-", "-")
	cmd.Stdin = bytes.NewReader(pdf.body)
	text, err := cmd.Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	if !strings.Contains(string(text), "Invoice 1") || !strings.Contains(string(text), "0.180000 SP") {
		t.Fatalf("PDF text lacks the number or total:\n%s", text)
	}

	call(t, h, "GET", path, bob, nil).wantError(t, http.StatusNotFound, "invoice_not_found")
	call(t, h, "GET", path, h.Operator, nil).want(t, http.StatusOK, nil)
	call(t, h, "GET", "/api/invoices/2", alice, nil).wantError(t, http.StatusNotFound, "invoice_not_found")
	call(t, h, "GET", "/api/invoices/x", alice, nil).wantError(t, http.StatusBadRequest, api.CodeBadRequest)
	call(t, h, "GET", path+"?format=doc", alice, nil).wantError(t, http.StatusBadRequest, api.CodeBadRequest)
	call(t, h, "GET", path, "", nil).wantError(t, http.StatusUnauthorized, api.CodeUnauthenticated)
}
