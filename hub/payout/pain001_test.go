package payout_test

import (
	"bytes"
	"encoding/csv"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moov-io/iso20022/pkg/document"
	"github.com/moov-io/iso20022/pkg/pain_v10"

	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/payout"
)

// parsePain001 parses a pain.001 file with a third-party ISO 20022
// library (moov-io/iso20022) and returns the message, failing the test if
// the library rejects it or finds it invalid.
func parsePain001(tb testing.TB, b []byte) *pain_v10.CustomerCreditTransferInitiationV10 {
	tb.Helper()
	doc, err := document.ParseIso20022Document(b)
	if err != nil {
		tb.Fatalf("moov-io/iso20022 cannot parse the pain.001:\n%s\n%v", b, err)
	}
	if doc.NameSpace() != payout.Pain001Namespace {
		tb.Fatalf("namespace %q", doc.NameSpace())
	}
	msg, ok := doc.InspectMessage().(*pain_v10.CustomerCreditTransferInitiationV10)
	if !ok {
		tb.Fatalf("parsed as %T", doc.InspectMessage())
	}
	// The library's whole-document Validate treats every xsd:choice as if
	// all its alternatives were required (ServiceLevel8Choice wants both
	// Cd and Prtry), so no schema-valid message passes it; its validators
	// of the values themselves (patterns, lengths, code lists) are sound
	// and check every value written here.
	validators := []interface{ Validate() error }{msg.GrpHdr.MsgId, msg.GrpHdr.NbOfTxs}
	if msg.GrpHdr.InitgPty.Nm != nil {
		validators = append(validators, *msg.GrpHdr.InitgPty.Nm)
	}
	for _, pi := range msg.PmtInf {
		validators = append(validators, pi.PmtInfId, pi.PmtMtd, pi.DbtrAcct.Id.IBAN)
		if pi.ChrgBr != nil {
			validators = append(validators, *pi.ChrgBr)
		}
		if bic := pi.DbtrAgt.FinInstnId.BICFI; bic != nil {
			validators = append(validators, *bic)
		}
		for _, tx := range pi.CdtTrfTxInf {
			validators = append(validators, tx.PmtId.EndToEndId, tx.Amt.InstdAmt.Ccy)
			if tx.PmtId.InstrId != nil {
				validators = append(validators, *tx.PmtId.InstrId)
			}
			if tx.Cdtr != nil && tx.Cdtr.Nm != nil {
				validators = append(validators, *tx.Cdtr.Nm)
			}
			if tx.CdtrAcct != nil {
				validators = append(validators, tx.CdtrAcct.Id.IBAN)
			}
			if tx.CdtrAgt != nil && tx.CdtrAgt.FinInstnId.BICFI != nil {
				validators = append(validators, *tx.CdtrAgt.FinInstnId.BICFI)
			}
		}
	}
	for _, v := range validators {
		if err := v.Validate(); err != nil {
			tb.Errorf("moov-io/iso20022 finds %T %v invalid: %v", v, v, err)
		}
	}
	return msg
}

// cents turns an ISO 20022 amount (parsed as a float by the library) back
// into cents; amounts have two decimals, so rounding is exact.
func cents(v float64) int64 { return int64(math.Round(v * 100)) }

// line is a payee and amount, as both batch files say them.
type line struct {
	name, iban, bic string
	cents           int64
	endToEnd        string
}

// checkPain001 checks a parsed pain.001's SEPA fields, totals and
// transactions against b's payouts, in order.
func checkPain001(tb testing.TB, msg *pain_v10.CustomerCreditTransferInitiationV10, b *payout.Batch) {
	tb.Helper()
	var want []line
	var total int64
	for _, p := range b.Payouts {
		want = append(want, line{p.LegalName, string(p.IBAN), string(p.BIC), p.Cents, p.EndToEndID})
		total += p.Cents
	}
	if string(msg.GrpHdr.MsgId) != b.MsgID() || string(msg.GrpHdr.NbOfTxs) != strconv.Itoa(len(want)) || cents(msg.GrpHdr.CtrlSum) != total {
		tb.Errorf("group header: MsgId %s, NbOfTxs %s, CtrlSum %v; want %s, %d, %s", msg.GrpHdr.MsgId, msg.GrpHdr.NbOfTxs, msg.GrpHdr.CtrlSum, b.MsgID(), len(want), payout.EUR(total))
	}
	if len(msg.PmtInf) != 1 {
		tb.Fatalf("%d payment information blocks, want 1", len(msg.PmtInf))
	}
	pi := msg.PmtInf[0]
	if pi.PmtMtd != "TRF" || pi.ChrgBr == nil || *pi.ChrgBr != "SLEV" || pi.PmtTpInf == nil || len(pi.PmtTpInf.SvcLvl) != 1 || pi.PmtTpInf.SvcLvl[0].Cd != "SEPA" {
		tb.Errorf("payment information is not a SEPA credit transfer: %+v", pi)
	}
	if pi.NbOfTxs == nil || string(*pi.NbOfTxs) != strconv.Itoa(len(want)) || cents(pi.CtrlSum) != total {
		tb.Errorf("payment information: NbOfTxs %v, CtrlSum %v", pi.NbOfTxs, pi.CtrlSum)
	}
	if pi.Dbtr.Nm == nil || string(*pi.Dbtr.Nm) != b.Debtor.Name || string(pi.DbtrAcct.Id.IBAN) != string(b.Debtor.IBAN) {
		tb.Errorf("debtor %v %s, want %s %s", pi.Dbtr.Nm, pi.DbtrAcct.Id.IBAN, b.Debtor.Name, b.Debtor.IBAN)
	}
	if time.Time(pi.ReqdExctnDt.Dt).Format("2006-01-02") != b.Created.UTC().Format("2006-01-02") {
		tb.Errorf("requested execution date %v", time.Time(pi.ReqdExctnDt.Dt))
	}
	if !time.Time(msg.GrpHdr.CreDtTm).Equal(b.Created) {
		tb.Errorf("creation time %v, want %v", time.Time(msg.GrpHdr.CreDtTm), b.Created)
	}
	var got []line
	for _, tx := range pi.CdtTrfTxInf {
		if tx.Amt.InstdAmt.Ccy != "EUR" {
			tb.Errorf("currency %q", tx.Amt.InstdAmt.Ccy)
		}
		l := line{iban: string(tx.CdtrAcct.Id.IBAN), cents: cents(tx.Amt.InstdAmt.Value), endToEnd: string(tx.PmtId.EndToEndId)}
		if tx.Cdtr != nil && tx.Cdtr.Nm != nil {
			l.name = string(*tx.Cdtr.Nm)
		}
		if tx.CdtrAgt != nil && tx.CdtrAgt.FinInstnId.BICFI != nil {
			l.bic = string(*tx.CdtrAgt.FinInstnId.BICFI)
		}
		got = append(got, l)
	}
	if len(got) != len(want) {
		tb.Fatalf("pain.001 has %d transactions, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			tb.Errorf("pain.001 transaction %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// checkCSV parses a batch CSV and compares it with b's payouts.
func checkCSV(tb testing.TB, data []byte, b *payout.Batch) {
	tb.Helper()
	rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		tb.Fatalf("batch CSV does not parse: %v\n%s", err, data)
	}
	if len(rows) != len(b.Payouts)+1 || strings.Join(rows[0], ",") != strings.Join(payout.CSVHeader, ",") {
		tb.Fatalf("batch CSV: %d rows, header %v", len(rows), rows[0])
	}
	for i, p := range b.Payouts {
		r := rows[i+1]
		var ids []string
		for _, t := range p.Transfers {
			ids = append(ids, t.ID.String())
		}
		want := []string{p.LegalName, string(p.IBAN), string(p.BIC), payout.EUR(p.Cents), strconv.FormatInt(int64(p.Amount), 10), p.Period.String(), strings.Join(ids, " "), p.EndToEndID}
		if strings.Join(r, "|") != strings.Join(want, "|") {
			tb.Errorf("CSV row %d: %q, want %q", i+1, r, want)
		}
	}
}

func testBatch() *payout.Batch {
	p, _ := payout.ParsePeriod("2026-11")
	mk := func(name, iban, bic string, usp ledger.Amount, c int64) payout.Payout {
		id := payout.TransferID("hub.example", name, p, ledger.ID{1})
		return payout.Payout{Period: p, Owner: strings.ToLower(strings.Fields(name)[0]), LegalName: name, IBAN: payout.IBAN(iban), BIC: payout.BIC(bic),
			Amount: usp, Cents: c, Transfers: []payout.Transfer{{Account: ledger.ID{1}, ID: id, Amount: usp}}, EndToEndID: payout.EndToEndID(id), State: payout.Paid}
	}
	return &payout.Batch{
		Number: 42, Period: p, Hub: "hub.example", Created: time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC),
		Debtor: payout.Party{Name: "Spice Co-op e.V.", IBAN: "DE89370400440532013000", BIC: "COBADEFFXXX"},
		Payouts: []payout.Payout{
			mk("Alice Müller", "FR1420041010050500013M02606", "", 12_340_000, 1234),
			mk("Bob O'Neill & Sons", "NL91ABNA0417164300", "ABNANL2A", 1_000_000, 100),
			mk("Zoë", "BE68539007547034", "", 7_000_001, 7),
		},
	}
}

func TestPain001ParsesBack(t *testing.T) {
	b := testBatch()
	var buf bytes.Buffer
	if err := payout.WritePain001(&buf, b); err != nil {
		t.Fatal(err)
	}
	checkPain001(t, parsePain001(t, buf.Bytes()), b)
	var again bytes.Buffer
	if err := payout.WritePain001(&again, b); err != nil || !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Errorf("writing the same batch twice gave different bytes (%v)", err)
	}
}

func TestPain001WithoutDebtorBIC(t *testing.T) {
	b := testBatch()
	b.Debtor.BIC = ""
	var buf bytes.Buffer
	if err := payout.WritePain001(&buf, b); err != nil {
		t.Fatal(err)
	}
	msg := parsePain001(t, buf.Bytes())
	if o := msg.PmtInf[0].DbtrAgt.FinInstnId.Othr; o == nil || o.Id != "NOTPROVIDED" {
		t.Errorf("debtor agent without BIC: %+v", msg.PmtInf[0].DbtrAgt.FinInstnId)
	}
}

func TestCSVParsesBack(t *testing.T) {
	b := testBatch()
	var buf bytes.Buffer
	if err := payout.WriteCSV(&buf, b); err != nil {
		t.Fatal(err)
	}
	checkCSV(t, buf.Bytes(), b)
}

func TestFileRail(t *testing.T) {
	dir := t.TempDir() + "/batches"
	b := testBatch()
	refs, err := payout.FileRail{Dir: dir}.Pay(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 2 || !strings.HasSuffix(refs[0], "/payout-2026-11-000042.csv") || !strings.HasSuffix(refs[1], "/payout-2026-11-000042.xml") {
		t.Fatalf("refs %v", refs)
	}
	csvData, _ := os.ReadFile(refs[0])
	checkCSV(t, csvData, b)
	xmlData, _ := os.ReadFile(refs[1])
	checkPain001(t, parsePain001(t, xmlData), b)
	if _, err := (payout.FileRail{Dir: dir}).Pay(t.Context(), b); err != nil {
		t.Fatalf("paying the same batch again: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("%d files in the batch directory, want 2 (no temporary files left)", len(entries))
	}
}

func ExampleWriteCSV() {
	p, _ := payout.ParsePeriod("2026-11")
	b := &payout.Batch{Number: 7, Period: p, Payouts: []payout.Payout{{
		Period: p, LegalName: "Alice Müller", IBAN: "DE89370400440532013000", BIC: "COBADEFFXXX", Amount: 12_340_000, Cents: 1234,
		Transfers:  []payout.Transfer{{ID: ledger.ID{0x01, 0x02}}},
		EndToEndID: payout.EndToEndID(ledger.ID{0x01, 0x02}),
	}}}
	payout.WriteCSV(os.Stdout, b)
	// Output:
	// payee,iban,bic,eur,usp,period,ledger_transfer_ids,end_to_end_id
	// Alice Müller,DE89370400440532013000,COBADEFFXXX,12.34,12340000,2026-11,01020000-0000-0000-0000-000000000000,01020000000000000000000000000000
}
