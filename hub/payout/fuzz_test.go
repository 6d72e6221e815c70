package payout_test

import (
	"strings"
	"testing"

	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/payout"
)

// FuzzParseIBAN: IBANs come from contributors. Parsing never panics, every
// error is coded invalid_iban, and an accepted IBAN is canonical (its
// electronic and printed forms parse back to itself) and passes MOD 97-10.
func FuzzParseIBAN(f *testing.F) {
	for _, s := range []string{"DE89370400440532013000", "DE89 3704 0044 0532 0130 00", "gb82west12345698765432", "NO9386011117947", "DE00", "", "ÄÖ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		iban, err := payout.ParseIBAN(s)
		if err != nil {
			if coded.CodeOf(err) != payout.CodeInvalidIBAN {
				t.Fatalf("ParseIBAN(%q): error %v is not invalid_iban", s, err)
			}
			return
		}
		if strings.ContainsAny(string(iban), " abcdefghijklmnopqrstuvwxyz") || len(iban) < 15 || len(iban) > 34 {
			t.Fatalf("ParseIBAN(%q) = %q: not in electronic form", s, iban)
		}
		for _, form := range []string{string(iban), iban.Printed()} {
			if again, err := payout.ParseIBAN(form); err != nil || again != iban {
				t.Fatalf("ParseIBAN(%q) = %q, but %q parses to %q, %v", s, iban, form, again, err)
			}
		}
		// Changing one check digit breaks the checksum.
		b := []byte(iban)
		b[3] = '0' + (b[3]-'0'+1)%10
		if _, err := payout.ParseIBAN(string(b)); err == nil {
			t.Fatalf("%q accepted, and so is %q with another check digit", iban, b)
		}
	})
}

// FuzzParsePeriod: periods come from operators and URLs. Parsing never
// panics, errors are coded invalid_period, and an accepted period is
// exactly its text form.
func FuzzParsePeriod(f *testing.F) {
	for _, s := range []string{"2026-11", "2026-13", "1999-12", "2026-1", "", "9999-12"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := payout.ParsePeriod(s)
		if err != nil {
			if coded.CodeOf(err) != payout.CodeInvalidPeriod {
				t.Fatalf("ParsePeriod(%q): error %v is not invalid_period", s, err)
			}
			return
		}
		if p.String() != s {
			t.Fatalf("ParsePeriod(%q) = %s", s, p)
		}
		if !p.Start().Before(p.End()) || payout.PeriodOf(p.Start()) != p || payout.PeriodOf(p.End()).Prev() != p {
			t.Fatalf("period %s: [%s, %s)", p, p.Start(), p.End())
		}
	})
}
