package invoice

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strings"

	"codeberg.org/go-pdf/fpdf"
	"github.com/spiceroute/spiceroute/hub/ledger"
)

//go:embed invoice.html.tmpl
var htmlSrc string

var htmlTmpl = template.Must(template.New("invoice").Funcs(template.FuncMap{
	"ids": func(ids []ledger.ID) string {
		s := make([]string, len(ids))
		for i, id := range ids {
			s[i] = id.String()
		}
		return strings.Join(s, " ")
	},
	"indexes": joinIndexes,
}).Parse(htmlSrc))

func joinIndexes(xs []int64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}

// HTML writes the document as a standalone HTML page.
func (inv *Invoice) HTML(w io.Writer) error {
	return htmlTmpl.Execute(w, inv)
}

// PDF writes the document as a one-or-more page A4 PDF.
func (inv *Invoice) PDF(w io.Writer) error {
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetTitle(inv.Title(), true)
	pdf.SetCreator("SpiceRoute", true)
	pdf.SetAutoPageBreak(true, 15)
	pdf.AddPage()
	tr := pdf.UnicodeTranslatorFromDescriptor("") // cp1252: enough for names and "×"
	pdf.SetFont("Helvetica", "B", 16)
	pdf.Cell(0, 10, tr(inv.Title()))
	pdf.Ln(12)
	pdf.SetFont("Helvetica", "", 10)
	meta := [][2]string{{"Hub", inv.Hub}, {"Issued", inv.IssuedAt.UTC().Format("2006-01-02 15:04 UTC")}}
	if inv.Kind == RenterInvoice {
		meta = append(meta, [2]string{"Renter", inv.Party}, [2]string{"Job", inv.Job})
	} else {
		meta = append(meta, [2]string{"Contributor", inv.Party},
			[2]string{"Period", inv.From.UTC().Format("2006-01-02 15:04") + " to " + inv.To.UTC().Format("2006-01-02 15:04 UTC")})
	}
	for _, m := range meta {
		pdf.CellFormat(30, 6, tr(m[0]), "", 0, "", false, 0, "")
		pdf.CellFormat(0, 6, tr(m[1]), "", 1, "", false, 0, "")
	}
	pdf.Ln(4)
	widths := []float64{38, 62, 40, 40}
	pdf.SetFont("Helvetica", "B", 9)
	for i, h := range []string{"Allocation", "Resource", "Unit price", "Amount"} {
		align := ""
		if i >= 2 {
			align = "R"
		}
		pdf.CellFormat(widths[i], 7, h, "B", 0, align, false, 0, "")
	}
	pdf.Ln(-1)
	pdf.SetFont("Helvetica", "", 9)
	for _, l := range inv.Lines {
		alloc := l.Allocation
		if len(alloc) > 18 {
			alloc = alloc[:18]
		}
		pdf.CellFormat(widths[0], 6, tr(alloc), "", 0, "", false, 0, "")
		pdf.CellFormat(widths[1], 6, tr(l.Description()), "", 0, "", false, 0, "")
		pdf.CellFormat(widths[2], 6, tr(l.unitPrice()), "", 0, "R", false, 0, "")
		pdf.CellFormat(widths[3], 6, l.Cost.Amount.String(), "", 1, "R", false, 0, "")
		pdf.SetFont("Helvetica", "", 7)
		pdf.CellFormat(0, 4, tr("log "+joinIndexes(l.LogIndexes)), "", 1, "", false, 0, "")
		pdf.SetFont("Helvetica", "", 9)
	}
	pdf.Ln(3)
	totals := [][2]string{{"Subtotal", inv.Subtotal.String()}}
	if inv.Kind == RenterInvoice {
		if inv.Credit > 0 {
			totals = append(totals, [2]string{"Beyond your quoted maximum, not charged", "-" + inv.Credit.String()})
		}
		totals = append(totals, [2]string{"of which hub commission", inv.Commission.String()}, [2]string{"Total paid", inv.Total.String()})
	} else {
		totals = append(totals, [2]string{"Hub commission", "-" + inv.Commission.String()}, [2]string{"Total credited", inv.Total.String()})
	}
	for i, t := range totals {
		if i == len(totals)-1 {
			pdf.SetFont("Helvetica", "B", 10)
		}
		pdf.CellFormat(140, 6, tr(t[0]), "", 0, "R", false, 0, "")
		pdf.CellFormat(40, 6, t[1], "", 1, "R", false, 0, "")
	}
	pdf.SetFont("Helvetica", "", 8)
	pdf.Ln(4)
	for _, n := range inv.Notes {
		pdf.MultiCell(0, 4, tr(n), "", "", false)
	}
	pdf.MultiCell(0, 4, tr("Amounts in Spice (SP). Each line's settlement transfers are in this hub's transparency log at the indexes shown; check them with `spice transfer proof`."), "", "", false)
	var buf bytes.Buffer
	if err := pdf.Output(&buf); err != nil {
		return fmt.Errorf("invoice: pdf: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// unitPrice is the line's unit price, e.g. "0.040000 SP/core-hour"; ""
// for statement lines.
func (l Line) unitPrice() string {
	if l.Cost.Unit == "" {
		return ""
	}
	return l.Cost.UnitPrice.String() + "/" + l.Cost.Unit
}
