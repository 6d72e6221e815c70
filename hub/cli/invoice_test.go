package cli_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/api/apitest"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/invoice"
	"github.com/spiceroute/spiceroute/hub/market"
)

func TestInvoiceGet(t *testing.T) {
	h := apitest.New(t, api.Config{})
	alice := map[string]string{"SPICE_ADDR": h.URL, "SPICE_TOKEN": h.Token(t, "alice", auth.RoleRenter)}
	lines, _ := market.DefaultPrices.Breakdown(market.Resources{CPUMHz: 1000}, time.Hour)
	inv := &invoice.Invoice{Kind: invoice.RenterInvoice, Hub: "test", Party: "alice", Job: "render", IssuedAt: time.Now(),
		Lines: []invoice.Line{{Allocation: "alloc-1", Cost: lines[0], LogIndexes: []int64{12}}}}
	if err := h.Store.IssueInvoice(context.Background(), inv); err != nil {
		t.Fatal(err)
	}
	out := spice(t, alice, "invoice", "get", "1").ok(t)
	row(t, out, "Party", "alice")
	contains(t, out, "alloc-1", "total 0.040000 SP")

	dir := t.TempDir()
	pdf := filepath.Join(dir, "invoice.pdf")
	contains(t, spice(t, alice, "invoice", "get", "1", "-o", pdf).ok(t), "Saved invoice 1")
	text, err := exec.Command("pdftotext", pdf, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	if !strings.Contains(string(text), "0.040000 SP") || !strings.Contains(string(text), "Invoice 1") {
		t.Fatalf("PDF text lacks the total:\n%s", text)
	}
	htmlPath := filepath.Join(dir, "invoice.html")
	spice(t, alice, "invoice", "get", "1", "-o", htmlPath).ok(t)
	if b, _ := os.ReadFile(htmlPath); !strings.Contains(string(b), "Total paid") {
		t.Fatal("saved HTML lacks the total")
	}
	spice(t, alice, "invoice", "get", "1", "-o", filepath.Join(dir, "x.doc")).fails(t, 1, "want pdf or html")
	spice(t, alice, "invoice", "get", "nope").fails(t, 1, "positive integer")
	bob := map[string]string{"SPICE_ADDR": h.URL, "SPICE_TOKEN": h.Token(t, "bob", auth.RoleRenter)}
	spice(t, bob, "invoice", "get", "1").fails(t, 1, "invoice_not_found")
}
