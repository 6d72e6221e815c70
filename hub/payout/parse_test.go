package payout_test

import (
	"encoding/json"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/payout"
)

func TestParseIBAN(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     payout.IBAN // "" = invalid
	}{
		{"Germany", "DE89370400440532013000", "DE89370400440532013000"},
		{"Printed", "DE89 3704 0044 0532 0130 00", "DE89370400440532013000"},
		{"LowerCase", "gb82west12345698765432", "GB82WEST12345698765432"},
		{"France", "FR1420041010050500013M02606", "FR1420041010050500013M02606"},
		{"Netherlands", "NL91ABNA0417164300", "NL91ABNA0417164300"},
		{"Belgium", "BE68539007547034", "BE68539007547034"},
		{"NorwayShortest", "NO9386011117947", "NO9386011117947"},
		{"Switzerland", "CH9300762011623852957", "CH9300762011623852957"},
		{"Malta", "MT84MALT011000012345MTLCAST001S", "MT84MALT011000012345MTLCAST001S"},
		{"WrongCheckDigits", "DE89370400440532013001", ""},
		{"SwappedDigits", "DE89370400440532031000", ""},
		{"TooShortForCountry", "DE8937040044053201300", ""},
		{"TooLongForCountry", "DE893704004405320130000", ""},
		{"UnknownCountry", "XX89370400440532013000", ""},
		{"DigitsForCountry", "1289370400440532013000", ""},
		{"LettersForCheckDigits", "DEAB370400440532013000", ""},
		{"Punctuation", "DE89-3704-0044-0532-0130-00", ""},
		{"Empty", "", ""},
		{"Short", "DE8", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := payout.ParseIBAN(tc.in)
			if tc.want == "" {
				if coded.CodeOf(err) != payout.CodeInvalidIBAN {
					t.Fatalf("ParseIBAN(%q) = %q, %v; want invalid_iban", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseIBAN(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	if p := payout.IBAN("DE89370400440532013000").Printed(); p != "DE89 3704 0044 0532 0130 00" {
		t.Errorf("Printed = %q", p)
	}
}

func TestParseBIC(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want payout.BIC
		ok   bool
	}{
		{"COBADEFFXXX", "COBADEFFXXX", true},
		{"deutdeff", "DEUTDEFF", true},
		{"", "", true},
		{"DEUTDEF", "", false},
		{"DEUT1EFF", "", false},
		{"DEUTDEFF50", "", false},
		{"DEUTDEFF-00", "", false},
	} {
		got, err := payout.ParseBIC(tc.in)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("ParseBIC(%q) = %q, %v", tc.in, got, err)
		}
		if !tc.ok && coded.CodeOf(err) != payout.CodeInvalidBIC {
			t.Errorf("ParseBIC(%q): code %q, want invalid_bic", tc.in, coded.CodeOf(err))
		}
	}
}

func TestParsePeriod(t *testing.T) {
	p, err := payout.ParsePeriod("2026-11")
	if err != nil || p.String() != "2026-11" {
		t.Fatalf("ParsePeriod = %v, %v", p, err)
	}
	if !p.Start().Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) || !p.End().Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("%s: [%s, %s)", p, p.Start(), p.End())
	}
	if jan, _ := payout.ParsePeriod("2026-01"); jan.Prev().String() != "2025-12" {
		t.Errorf("2026-01 Prev = %s", jan.Prev())
	}
	if got := payout.PeriodOf(time.Date(2026, 12, 31, 23, 30, 0, 0, time.FixedZone("x", -3600))); got.String() != "2027-01" {
		t.Errorf("PeriodOf in UTC = %s, want 2027-01", got)
	}
	b, _ := json.Marshal(struct{ P payout.Period }{p})
	var back struct{ P payout.Period }
	if err := json.Unmarshal(b, &back); err != nil || back.P != p {
		t.Errorf("JSON %s -> %v, %v", b, back.P, err)
	}
	for _, bad := range []string{"", "2026-1", "2026-13", "2026-00", "1999-12", "2026/11", "2026-11-01", " 2026-11", "２026-11", "-026-11"} {
		if _, err := payout.ParsePeriod(bad); coded.CodeOf(err) != payout.CodeInvalidPeriod {
			t.Errorf("ParsePeriod(%q): %v, want invalid_period", bad, err)
		}
	}
}

func TestNewProfile(t *testing.T) {
	ok := payout.ProfileRequest{LegalName: "  Alice   Müller ", IBAN: "de89 3704 0044 0532 0130 00", BIC: "cobadeffxxx", Threshold: 5 * ledger.MicroPerSpice}
	p, err := payout.NewProfile("alice", ok)
	if err != nil || p.LegalName != "Alice Müller" || p.IBAN != "DE89370400440532013000" || p.BIC != "COBADEFFXXX" || p.Threshold != ok.Threshold {
		t.Fatalf("NewProfile = %+v, %v", p, err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*payout.ProfileRequest)
		code coded.Code
	}{
		{"ThresholdBelowMinimum", func(r *payout.ProfileRequest) { r.Threshold = payout.MinThreshold - 1 }, payout.CodeInvalidThreshold},
		{"ThresholdZero", func(r *payout.ProfileRequest) { r.Threshold = 0 }, payout.CodeInvalidThreshold},
		{"ThresholdNegative", func(r *payout.ProfileRequest) { r.Threshold = -ledger.MicroPerSpice }, payout.CodeInvalidThreshold},
		{"BadIBAN", func(r *payout.ProfileRequest) { r.IBAN = "DE89370400440532013001" }, payout.CodeInvalidIBAN},
		{"BadBIC", func(r *payout.ProfileRequest) { r.BIC = "COBA" }, payout.CodeInvalidBIC},
		{"NoName", func(r *payout.ProfileRequest) { r.LegalName = "  " }, payout.CodeInvalidName},
		{"NameWithMarkup", func(r *payout.ProfileRequest) { r.LegalName = "<b>Alice</b>" }, payout.CodeInvalidName},
		{"NameTooLong", func(r *payout.ProfileRequest) { r.LegalName = string(make([]byte, 71)) }, payout.CodeInvalidName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			tc.mod(&r)
			if _, err := payout.NewProfile("alice", r); coded.CodeOf(err) != tc.code {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
		})
	}
	if _, err := payout.NewProfile("alice", payout.ProfileRequest{LegalName: "A", IBAN: "DE89370400440532013000", Threshold: payout.MinThreshold}); err != nil {
		t.Errorf("threshold exactly the minimum, no BIC: %v", err)
	}
}

func TestConvert(t *testing.T) {
	for _, tc := range []struct {
		available  ledger.Amount
		rate       int64
		amount     ledger.Amount
		cents      int64
		whyMessage string
	}{
		{12_345_678, 100, 12_340_000, 1234, "1 EUR per SP: 5678 µSP are less than a cent"},
		{1_000_000, 7, 1_000_000, 7, "exact"},
		{1_500_000, 7, 1_428_572, 10, "10 cents are 1428571.43 µSP: rounded up to whole µSP"},
		{9_999, 100, 0, 0, "less than a cent"},
		{0, 100, 0, 0, "nothing"},
		{ledger.MaxAmount, payout.MaxRateCents, ledger.MaxAmount, int64(ledger.MaxAmount), "the largest amount at the largest rate"},
	} {
		amount, cents := payout.Convert(tc.available, tc.rate)
		if amount != tc.amount || cents != tc.cents {
			t.Errorf("Convert(%d, %d) = %d µSP, %d cents; want %d, %d (%s)", tc.available, tc.rate, amount, cents, tc.amount, tc.cents, tc.whyMessage)
		}
	}
	// Properties, checked with big integers: the amount is at most what is
	// available, is worth exactly the cents, and is the least amount that is.
	rng := rand.New(rand.NewPCG(1, 2))
	worth := func(a ledger.Amount, rate int64) *big.Int {
		v := new(big.Int).Mul(big.NewInt(int64(a)), big.NewInt(rate))
		return v.Quo(v, big.NewInt(int64(ledger.MicroPerSpice)))
	}
	for i := 0; i < 20000; i++ {
		avail := ledger.Amount(rng.Int64N(int64(1) << (10 + rng.IntN(53))))
		rate := 1 + rng.Int64N(int64(1)<<rng.IntN(21))
		if rate > payout.MaxRateCents {
			rate = payout.MaxRateCents
		}
		amount, cents := payout.Convert(avail, rate)
		if amount > avail || amount < 0 {
			t.Fatalf("Convert(%d, %d): amount %d outside [0, available]", avail, rate, amount)
		}
		if want := worth(avail, rate); want.Int64() != cents {
			t.Fatalf("Convert(%d, %d): %d cents, want ⌊available×rate/10⁶⌋ = %s", avail, rate, cents, want)
		}
		if got := worth(amount, rate); got.Int64() != cents {
			t.Fatalf("Convert(%d, %d): amount %d is worth %s cents, not %d", avail, rate, amount, got, cents)
		}
		if amount > 0 && worth(amount-1, rate).Int64() == cents {
			t.Fatalf("Convert(%d, %d): amount %d is not the least worth %d cents", avail, rate, amount, cents)
		}
	}
}

func TestTransferID(t *testing.T) {
	p, _ := payout.ParsePeriod("2026-11")
	q, _ := payout.ParsePeriod("2026-12")
	a, b := ledger.NewID(), ledger.NewID()
	id := payout.TransferID("hub", "alice", p, a)
	if id != payout.TransferID("hub", "alice", p, a) {
		t.Fatal("TransferID is not deterministic")
	}
	for _, other := range []ledger.ID{
		payout.TransferID("hub2", "alice", p, a), payout.TransferID("hub", "alicf", p, a),
		payout.TransferID("hub", "alice", q, a), payout.TransferID("hub", "alice", p, b),
	} {
		if other == id {
			t.Fatal("TransferID ignores one of its inputs")
		}
	}
	if e := payout.EndToEndID(id); len(e) != 32 {
		t.Errorf("EndToEndID %q: want 32 hex digits (ISO 20022 Max35Text)", e)
	}
}
