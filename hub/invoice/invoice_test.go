package invoice_test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/hub/invoice"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
)

func sample(t *testing.T) *invoice.Invoice {
	t.Helper()
	lines, err := market.DefaultPrices.Breakdown(market.Resources{CPUMHz: 500, MemoryMB: 256, DiskMB: 300}, 93*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	inv := &invoice.Invoice{Number: 42, Kind: invoice.RenterInvoice, Hub: "eu-west.example", Party: "alice", Job: "hello-world",
		IssuedAt: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), Commission: 1_234,
		Notes: []string{"allocation 9f2c lost on node n2 (contributor fault): not charged"}}
	tr := ledger.NewID()
	for i, l := range lines {
		inv.Lines = append(inv.Lines, invoice.Line{Allocation: "4d1c8e7a-alloc", Node: "n1", Cost: l, Transfers: []ledger.ID{tr}, LogIndexes: []int64{100 + int64(i)}})
	}
	if err := inv.Finish(); err != nil {
		t.Fatal(err)
	}
	return inv
}

func TestTotals(t *testing.T) {
	inv := sample(t)
	// 500 MHz·93 min at 0.04 SP/core-h = 31,000 µSP; 256 MB → 3,875 µSP; 300 MB disk → 90 µSP (each rounded down).
	if inv.Subtotal != 31_000+3_875+90 || inv.Total != inv.Subtotal {
		t.Fatalf("subtotal %d total %d", inv.Subtotal, inv.Total)
	}
	st := *inv
	st.Kind = invoice.ContributorStatement
	if err := st.Finish(); err != nil || st.Total != st.Subtotal-1_234 {
		t.Fatalf("statement total %d, %v", st.Total, err)
	}
	bad := *inv
	bad.Commission = inv.Subtotal + 1
	if bad.Finish() == nil {
		t.Fatal("a commission above the subtotal was accepted")
	}
}

// The PDF is read back as text by poppler's pdftotext (installed by make);
// a missing pdftotext fails the test.
func TestPDF(t *testing.T) {
	inv := sample(t)
	var buf bytes.Buffer
	if err := inv.PDF(&buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte("%PDF-")) {
		t.Fatalf("not a PDF: %q", buf.Bytes()[:16])
	}
	cmd := exec.Command("pdftotext", "-layout", "-", "-")
	cmd.Stdin = &buf
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pdftotext (apt-get install poppler-utils): %v", err)
	}
	text := string(out)
	for _, want := range []string{"Invoice 42", "alice", "hello-world", "Total paid", "0.034965 SP", "0.001234 SP", "0.031000 SP", "lost on node n2", "log 100"} {
		if !strings.Contains(text, want) {
			t.Errorf("PDF text lacks %q:\n%s", want, text)
		}
	}
}

func TestHTMLAndJSON(t *testing.T) {
	inv := sample(t)
	var buf bytes.Buffer
	if err := inv.HTML(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<title>Invoice 42", "Total paid", "0.034965 SP", inv.Lines[0].Transfers[0].String()} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	inv.Party = `<script>alert(1)</script>`
	buf.Reset()
	inv.HTML(&buf)
	if strings.Contains(buf.String(), "<script>alert") {
		t.Fatal("party name not escaped in HTML")
	}
	b, _ := json.Marshal(sample(t))
	var back invoice.Invoice
	if err := json.Unmarshal(b, &back); err != nil || back.Total != 34_965 || len(back.Lines) != 3 || back.Lines[2].LogIndexes[0] != 102 {
		t.Fatalf("JSON round trip: %+v, %v", back, err)
	}
}
