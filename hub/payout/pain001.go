package payout

import (
	"encoding/csv"
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spiceroute/spiceroute/hub/ledger"
)

// Batch is the paid payouts of one run, as handed to a Rail.
type Batch struct {
	Number  int64     // the run's batch number
	Period  Period    //
	Hub     string    // the hub's name, in the remittance information
	Created time.Time // when the run was planned: the batch's creation time
	Debtor  Party     // the hub's bank account
	Payouts []Payout  // the paid payouts, in order of owner
}

// MsgID is the batch's ISO 20022 message ID (at most 35 characters):
// "SPR-2026-11-000042".
func (b *Batch) MsgID() string { return fmt.Sprintf("SPR-%s-%06d", b.Period, b.Number) }

// TotalCents is the sum of the batch's payouts in euro cents.
func (b *Batch) TotalCents() int64 {
	var t int64
	for _, p := range b.Payouts {
		t += p.Cents
	}
	return t
}

// Name is the base name of the batch's files: "payout-2026-11-000042".
func (b *Batch) Name() string { return fmt.Sprintf("payout-%s-%06d", b.Period, b.Number) }

// remittance is the unstructured remittance information of a payout (at
// most 140 characters: ISO 20022 Max140Text).
func (b *Batch) remittance(p Payout) string {
	s := fmt.Sprintf("SpiceRoute payout %s %s µSP %s", p.Period, strconv.FormatInt(int64(p.Amount), 10), b.Hub)
	if r := []rune(s); len(r) > 140 {
		s = string(r[:140])
	}
	return s
}

// Pain001Namespace is the XML namespace of the pain.001 version written.
const Pain001Namespace = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.10"

// pain.001.001.10 (ISO 20022 CustomerCreditTransferInitiationV10), only the
// elements a SEPA credit transfer batch uses, in schema order:
//
//	Document/CstmrCdtTrfInitn
//	  GrpHdr: MsgId, CreDtTm, NbOfTxs, CtrlSum, InitgPty/Nm
//	  PmtInf: PmtInfId, PmtMtd=TRF, NbOfTxs, CtrlSum, PmtTpInf/SvcLvl/Cd=SEPA,
//	          ReqdExctnDt/Dt, Dbtr/Nm, DbtrAcct/Id/IBAN, DbtrAgt/FinInstnId/BICFI
//	          (or Othr/Id=NOTPROVIDED), ChrgBr=SLEV,
//	    CdtTrfTxInf (one per payout): PmtId/InstrId, PmtId/EndToEndId,
//	          Amt/InstdAmt[@Ccy=EUR], CdtrAgt/FinInstnId/BICFI (when known),
//	          Cdtr/Nm, CdtrAcct/Id/IBAN, RmtInf/Ustrd
type painDocument struct {
	XMLName xml.Name     `xml:"Document"`
	Xmlns   string       `xml:"xmlns,attr"`
	Init    painInitiate `xml:"CstmrCdtTrfInitn"`
}

type painInitiate struct {
	GrpHdr struct {
		MsgID    string    `xml:"MsgId"`
		CreDtTm  string    `xml:"CreDtTm"`
		NbOfTxs  int       `xml:"NbOfTxs"`
		CtrlSum  string    `xml:"CtrlSum"`
		InitgPty painParty `xml:"InitgPty"`
	} `xml:"GrpHdr"`
	PmtInf painPmtInf `xml:"PmtInf"`
}

type painParty struct {
	Nm string `xml:"Nm"`
}

type painAccount struct {
	IBAN string `xml:"Id>IBAN"`
}

type painAgent struct {
	BICFI string `xml:"FinInstnId>BICFI,omitempty"`
	Othr  string `xml:"FinInstnId>Othr>Id,omitempty"`
}

type painPmtInf struct {
	PmtInfID    string      `xml:"PmtInfId"`
	PmtMtd      string      `xml:"PmtMtd"`
	NbOfTxs     int         `xml:"NbOfTxs"`
	CtrlSum     string      `xml:"CtrlSum"`
	SvcLvl      string      `xml:"PmtTpInf>SvcLvl>Cd"`
	ReqdExctnDt string      `xml:"ReqdExctnDt>Dt"`
	Dbtr        painParty   `xml:"Dbtr"`
	DbtrAcct    painAccount `xml:"DbtrAcct"`
	DbtrAgt     painAgent   `xml:"DbtrAgt"`
	ChrgBr      string      `xml:"ChrgBr"`
	Tx          []painTx    `xml:"CdtTrfTxInf"`
}

type painTx struct {
	InstrID    string `xml:"PmtId>InstrId"`
	EndToEndID string `xml:"PmtId>EndToEndId"`
	Amt        struct {
		Ccy   string `xml:"Ccy,attr"`
		Value string `xml:",chardata"`
	} `xml:"Amt>InstdAmt"`
	CdtrAgt  *painAgent  `xml:"CdtrAgt,omitempty"`
	Cdtr     painParty   `xml:"Cdtr"`
	CdtrAcct painAccount `xml:"CdtrAcct"`
	Ustrd    string      `xml:"RmtInf>Ustrd"`
}

// WritePain001 writes b as an ISO 20022 pain.001.001.10 message for SEPA
// credit transfers (EPC SEPA Credit Transfer rulebook: service level SEPA,
// charges shared SLEV, euro amounts with two decimals). The output depends
// only on b, so writing the same batch twice gives the same bytes.
func WritePain001(w io.Writer, b *Batch) error {
	doc := painDocument{Xmlns: Pain001Namespace}
	in := &doc.Init
	sum := EUR(b.TotalCents())
	in.GrpHdr.MsgID = b.MsgID()
	in.GrpHdr.CreDtTm = b.Created.UTC().Format("2006-01-02T15:04:05Z")
	in.GrpHdr.NbOfTxs = len(b.Payouts)
	in.GrpHdr.CtrlSum = sum
	in.GrpHdr.InitgPty.Nm = b.Debtor.Name
	pi := &in.PmtInf
	pi.PmtInfID = b.MsgID()
	pi.PmtMtd = "TRF"
	pi.NbOfTxs = len(b.Payouts)
	pi.CtrlSum = sum
	pi.SvcLvl = "SEPA"
	pi.ReqdExctnDt = b.Created.UTC().Format("2006-01-02")
	pi.Dbtr.Nm = b.Debtor.Name
	pi.DbtrAcct.IBAN = string(b.Debtor.IBAN)
	pi.DbtrAgt = agent(b.Debtor.BIC)
	pi.ChrgBr = "SLEV"
	for i, p := range b.Payouts {
		tx := painTx{InstrID: fmt.Sprintf("%s-%d", b.MsgID(), i+1), EndToEndID: p.EndToEndID}
		tx.Amt.Ccy, tx.Amt.Value = "EUR", EUR(p.Cents)
		if p.BIC != "" {
			a := agent(p.BIC)
			tx.CdtrAgt = &a
		}
		tx.Cdtr.Nm = p.LegalName
		tx.CdtrAcct.IBAN = string(p.IBAN)
		tx.Ustrd = b.remittance(p)
		pi.Tx = append(pi.Tx, tx)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("payout: write pain.001: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("payout: write pain.001: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("payout: write pain.001: %w", err)
	}
	return nil
}

// agent identifies a bank by BIC, or as NOTPROVIDED (the EPC guidelines'
// value when the IBAN alone routes the payment).
func agent(bic BIC) painAgent {
	if bic == "" {
		return painAgent{Othr: "NOTPROVIDED"}
	}
	return painAgent{BICFI: string(bic)}
}

// CSVHeader is the first line of a batch's CSV file.
var CSVHeader = []string{"payee", "iban", "bic", "eur", "usp", "period", "ledger_transfer_ids", "end_to_end_id"}

// WriteCSV writes b as CSV (RFC 4180): the header CSVHeader, then one line
// per payout with the payee's legal name, IBAN, BIC (may be empty), the
// euro amount ("12.34"), the µSP paid, the period, the ledger transfer IDs
// (space-separated UUIDs) and the end-to-end ID.
func WriteCSV(w io.Writer, b *Batch) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return fmt.Errorf("payout: write csv: %w", err)
	}
	for _, p := range b.Payouts {
		ids := make([]string, len(p.Transfers))
		for i, t := range p.Transfers {
			ids[i] = t.ID.String()
		}
		row := []string{csvSafe(p.LegalName), string(p.IBAN), string(p.BIC), EUR(p.Cents), strconv.FormatInt(int64(p.Amount), 10),
			p.Period.String(), strings.Join(ids, " "), p.EndToEndID}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("payout: write csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("payout: write csv: %w", err)
	}
	return nil
}

// csvSafe keeps a spreadsheet from reading a name as a formula (names
// starting with + or - are allowed by the SEPA character set).
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@", rune(s[0])) {
		return "'" + s
	}
	return s
}

// EndToEndID is the end-to-end ID of a payout whose first transfer is id:
// its 32 hex digits (a UUID's 36 characters exceed ISO 20022's Max35Text).
func EndToEndID(id ledger.ID) string { return strings.ReplaceAll(id.String(), "-", "") }
