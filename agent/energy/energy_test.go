package energy

import (
	"math/big"
	"os"
	"testing"
)

func rat(t *testing.T, s string) *big.Rat {
	t.Helper()
	r, err := ParseDecimal(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPropose(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		in                   Input
		wantWatts            int64
		wantPower, wantFloor int64
	}{
		// 65 W / 8 cores / 1000 = 0.008125 kWh; × 0.30 EUR = 0.0024375 EUR;
		// × 10 SP/EUR = 0.024375 SP = 24375 µSP; × 1.25 = 30468.75 → 30469.
		{"Given", Input{Watts: 65, Cores: 8, KWhPrice: rat(t, "0.30"), SPPerEUR: rat(t, "10")}, 65, 24375, 30469},
		// Estimated: 30 + 10×4 = 70 W; 70/4/1000 = 0.0175 kWh × 0.25 = 0.004375 EUR
		// × 100 SP/EUR = 0.4375 SP = 437500 µSP; × 1.25 = 546875 exactly.
		{"Estimated", Input{Cores: 4, KWhPrice: rat(t, "0.25"), SPPerEUR: rat(t, "100")}, 70, 437500, 546875},
		// 1 W / 3 cores / 1000 × 0.1 EUR × 1 SP/EUR × 10^6 = 33.33… µSP → 34;
		// × 2 = 66.66… → 67 (rounded from the exact value, not from 34).
		{"RoundsUpExactly", Input{Watts: 1, Cores: 3, KWhPrice: rat(t, "0.1"), SPPerEUR: rat(t, "1"), Margin: big.NewRat(2, 1)}, 1, 34, 67},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Propose(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if e.Watts != tc.wantWatts || e.WattsEstimated != (tc.in.Watts == 0) {
				t.Errorf("watts = %d (estimated %t), want %d", e.Watts, e.WattsEstimated, tc.wantWatts)
			}
			if e.PowerCost != tc.wantPower || e.FloorCPU != tc.wantFloor {
				t.Errorf("power cost %d, floor %d µSP; want %d, %d", e.PowerCost, e.FloorCPU, tc.wantPower, tc.wantFloor)
			}
			if e.FloorCPU < e.PowerCost {
				t.Errorf("floor %d below the power cost %d", e.FloorCPU, e.PowerCost)
			}
		})
	}
}

func TestProposeRejects(t *testing.T) {
	ok := Input{Watts: 65, Cores: 8, KWhPrice: big.NewRat(3, 10), SPPerEUR: big.NewRat(10, 1)}
	for name, mut := range map[string]func(*Input){
		"NoCores":        func(in *Input) { in.Cores = 0 },
		"NegativeWatts":  func(in *Input) { in.Watts = -1 },
		"NoPrice":        func(in *Input) { in.KWhPrice = nil },
		"ZeroRate":       func(in *Input) { in.SPPerEUR = new(big.Rat) },
		"MarginBelowOne": func(in *Input) { in.Margin = big.NewRat(9, 10) },
		"Overflow":       func(in *Input) { in.SPPerEUR = new(big.Rat).SetInt64(1 << 62) },
	} {
		t.Run(name, func(t *testing.T) {
			in := ok
			mut(&in)
			if e, err := Propose(in); err == nil {
				t.Errorf("Propose = %+v, want an error", e)
			}
		})
	}
}

func TestParseDecimal(t *testing.T) {
	if r := rat(t, "0.30"); r.Cmp(big.NewRat(3, 10)) != 0 {
		t.Errorf("0.30 = %s", r)
	}
	for _, s := range []string{"", "abc", "-1", "0", "1/3", "1e3", "0.1.2"} {
		if r, err := ParseDecimal(s); err == nil {
			t.Errorf("ParseDecimal(%q) = %s, want an error", s, r)
		}
	}
}

func TestFormatMicroSP(t *testing.T) {
	for in, want := range map[int64]string{0: "0.000000 SP", 30469: "0.030469 SP", 12_500_000: "12.500000 SP", -1: "-0.000001 SP"} {
		if got := FormatMicroSP(in); got != want {
			t.Errorf("FormatMicroSP(%d) = %q, want %q", in, got, want)
		}
	}
}

func ExampleEstimate_Explain() {
	e, _ := Propose(Input{Watts: 65, Cores: 8, KWhPrice: big.NewRat(3, 10), SPPerEUR: big.NewRat(10, 1)})
	e.Explain(os.Stdout)
	// Output:
	// Machine draw       65 W (given)
	// Power per core     0.008125 kWh per core-hour (65 W / 8 cores / 1000)
	// Power cost         0.002438 EUR per core-hour (at 0.3000 EUR/kWh)
	//                    = 0.024375 SP per core-hour (at 10.0000 SP/EUR)
	// Proposed floor     0.030469 SP per core-hour (power cost × 1.25 margin, rounded up)
}
