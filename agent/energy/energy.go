// Package energy proposes a contributor's price floor from what the
// machine's electricity costs, so that renting it out pays more than the
// power it burns.
//
// # Formula
//
// All arithmetic is exact (math/big.Rat); only the final floor is rounded,
// up, to whole micro-Spice:
//
//	kWh per core-hour   = watts / cores / 1000
//	EUR per core-hour   = kWh per core-hour × EUR per kWh
//	µSP per core-hour   = EUR per core-hour × SP per EUR × 1,000,000
//	floor               = ⌈ µSP per core-hour × margin ⌉
//
// The whole machine's draw under load is charged to its cores, which is on
// the safe side for the contributor: an idle machine that is on anyway
// costs less to rent out than this. The margin (default 1.25, i.e. 25 %
// above the power cost) covers wear and the hub's commission.
//
// # Wattage estimate
//
// When the owner does not know the machine's wattage, EstimateWatts takes
// 30 W for the machine (board, memory, disks, fans, power-supply losses)
// plus 10 W per logical CPU under load. That is about right for desktops
// and small servers (a 4-core mini PC: 70 W; a 16-thread desktop: 190 W);
// laptops draw less and big servers per core often less, so the estimate
// errs towards a higher floor. The estimate is shown, never silently used.
package energy

import (
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
)

// MicroPerSP is how many µSP make one SP.
const MicroPerSP = 1_000_000

// DefaultMargin is the factor over the power cost when Input.Margin is nil.
var DefaultMargin = big.NewRat(5, 4)

// Input is what the owner tells about the machine and the money.
type Input struct {
	// Watts is the machine's draw under load; 0 means "estimate from
	// Cores" (EstimateWatts).
	Watts int64
	// Cores is the number of logical CPUs Nomad offers. Required.
	Cores int
	// KWhPrice is the electricity price, EUR per kWh. Required, > 0.
	KWhPrice *big.Rat
	// SPPerEUR is how many SP one EUR buys. Required, > 0.
	SPPerEUR *big.Rat
	// Margin multiplies the power cost; nil means DefaultMargin. >= 1.
	Margin *big.Rat
}

// Estimate is a proposed floor and how it was reached.
type Estimate struct {
	Watts          int64
	WattsEstimated bool // Watts came from EstimateWatts
	Cores          int
	KWhPrice       *big.Rat // EUR per kWh
	SPPerEUR       *big.Rat
	Margin         *big.Rat
	// KWhPerCoreHour and EURPerCoreHour are the exact power use and cost
	// of one core for one hour.
	KWhPerCoreHour *big.Rat
	EURPerCoreHour *big.Rat
	// PowerCost is EURPerCoreHour in µSP, rounded up.
	PowerCost int64
	// FloorCPU is the proposed price floor, µSP per core-hour (rounded up).
	FloorCPU int64
}

// EstimateWatts is the wattage assumed for a machine with cores logical
// CPUs (see the package documentation).
func EstimateWatts(cores int) int64 { return 30 + 10*int64(cores) }

// Propose computes the floor for in.
func Propose(in Input) (Estimate, error) {
	if in.Cores <= 0 {
		return Estimate{}, errors.New("energy: the number of cores must be positive")
	}
	if in.Watts < 0 {
		return Estimate{}, errors.New("energy: watts must not be negative")
	}
	if in.KWhPrice == nil || in.KWhPrice.Sign() <= 0 {
		return Estimate{}, errors.New("energy: the electricity price (EUR per kWh) must be positive")
	}
	if in.SPPerEUR == nil || in.SPPerEUR.Sign() <= 0 {
		return Estimate{}, errors.New("energy: the exchange rate (SP per EUR) must be positive")
	}
	margin := in.Margin
	if margin == nil {
		margin = DefaultMargin
	}
	if margin.Cmp(big.NewRat(1, 1)) < 0 {
		return Estimate{}, errors.New("energy: the margin must be at least 1")
	}
	e := Estimate{Watts: in.Watts, Cores: in.Cores, KWhPrice: new(big.Rat).Set(in.KWhPrice),
		SPPerEUR: new(big.Rat).Set(in.SPPerEUR), Margin: new(big.Rat).Set(margin)}
	if e.Watts == 0 {
		e.Watts, e.WattsEstimated = EstimateWatts(in.Cores), true
	}
	// kWh per core-hour = watts / cores / 1000
	e.KWhPerCoreHour = big.NewRat(e.Watts, int64(in.Cores)*1000)
	// EUR per core-hour = kWh per core-hour × EUR per kWh
	e.EURPerCoreHour = new(big.Rat).Mul(e.KWhPerCoreHour, e.KWhPrice)
	// µSP per core-hour = EUR × SP/EUR × 10^6
	micro := new(big.Rat).Mul(e.EURPerCoreHour, e.SPPerEUR)
	micro.Mul(micro, big.NewRat(MicroPerSP, 1))
	var err error
	if e.PowerCost, err = ceil(micro); err != nil {
		return Estimate{}, err
	}
	// floor = ⌈ µSP per core-hour × margin ⌉
	if e.FloorCPU, err = ceil(micro.Mul(micro, e.Margin)); err != nil {
		return Estimate{}, err
	}
	return e, nil
}

// ceil rounds r (>= 0) up to an int64.
func ceil(r *big.Rat) (int64, error) {
	q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	if m.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return 0, errors.New("energy: the floor does not fit in int64 µSP")
	}
	return q.Int64(), nil
}

// ParseDecimal parses a positive decimal number such as "0.30" or "12"
// exactly (no binary floating point).
func ParseDecimal(s string) (*big.Rat, error) {
	s = strings.TrimSpace(s)
	r, ok := new(big.Rat).SetString(s)
	if !ok || strings.ContainsAny(s, "/eE") {
		return nil, fmt.Errorf("%q is not a decimal number", s)
	}
	if r.Sign() <= 0 {
		return nil, fmt.Errorf("%q must be positive", s)
	}
	return r, nil
}

// FormatMicroSP formats µSP as SP with six decimals, e.g. "0.030469 SP".
func FormatMicroSP(u int64) string {
	sign := ""
	if u < 0 {
		sign, u = "-", -u
	}
	return fmt.Sprintf("%s%d.%06d SP", sign, u/MicroPerSP, u%MicroPerSP)
}

// Explain writes the estimate step by step.
func (e Estimate) Explain(w io.Writer) {
	src := "given"
	if e.WattsEstimated {
		src = fmt.Sprintf("estimated: 30 W + 10 W × %d CPUs; pass -watts if you know better", e.Cores)
	}
	fmt.Fprintf(w, "Machine draw       %d W (%s)\n", e.Watts, src)
	fmt.Fprintf(w, "Power per core     %s kWh per core-hour (%d W / %d cores / 1000)\n", e.KWhPerCoreHour.FloatString(6), e.Watts, e.Cores)
	fmt.Fprintf(w, "Power cost         %s EUR per core-hour (at %s EUR/kWh)\n", e.EURPerCoreHour.FloatString(6), e.KWhPrice.FloatString(4))
	fmt.Fprintf(w, "                   = %s per core-hour (at %s SP/EUR)\n", FormatMicroSP(e.PowerCost), e.SPPerEUR.FloatString(4))
	fmt.Fprintf(w, "Proposed floor     %s per core-hour (power cost × %s margin, rounded up)\n", FormatMicroSP(e.FloorCPU), e.Margin.FloatString(2))
}
