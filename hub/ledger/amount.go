package ledger

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Amount is a quantity of Spice in micro-Spice (µSP): 1 SP = 1,000,000 µSP.
// Money is never a float. On the wire (JSON) an Amount is a plain integer of µSP.
type Amount int64

// MicroPerSpice is the number of µSP in one SP.
const MicroPerSpice Amount = 1_000_000

// MaxAmount is the largest amount a single transfer may move. Keeping it far
// below MaxInt64 means no sum of a few transfers can overflow unnoticed, and
// the ledger still checks every addition.
const MaxAmount Amount = 1 << 53

// String formats a as SP with six decimals, e.g. "12.500000 SP".
func (a Amount) String() string {
	sign := ""
	u := uint64(a)
	if a < 0 {
		sign = "-"
		u = uint64(-(a + 1)) + 1 // safe for MinInt64
	}
	return fmt.Sprintf("%s%d.%06d SP", sign, u/uint64(MicroPerSpice), u%uint64(MicroPerSpice))
}

// SP formats a as SP without a unit or trailing zeros, e.g. "0.04" or "12".
func (a Amount) SP() string {
	s := strings.TrimSuffix(a.String(), " SP")
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// ParseAmount parses a human amount: "12.5" or "12.5SP" (Spice, at most six
// decimals) or "12500000usp" / "12500000µSP" (micro-Spice). The result must be
// positive and at most MaxAmount.
func ParseAmount(s string) (Amount, error) {
	t := strings.TrimSpace(s)
	lower := strings.ToLower(t)
	var a Amount
	switch {
	case strings.HasSuffix(lower, "usp") || strings.HasSuffix(lower, "µsp"):
		num := strings.TrimSpace(t[:len(t)-len("usp")])
		if strings.HasSuffix(lower, "µsp") {
			num = strings.TrimSpace(t[:len(t)-len("µsp")])
		}
		v, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid amount %q: %w", s, strconv.ErrSyntax)
		}
		a = Amount(v)
	default:
		num := strings.TrimSpace(strings.TrimSuffix(lower, "sp"))
		whole, frac, hasDot := strings.Cut(num, ".")
		if whole == "" && !hasDot || len(frac) > 6 || hasDot && frac == "" {
			return 0, fmt.Errorf("invalid amount %q: want SP with at most 6 decimals, or an integer with suffix usp", s)
		}
		if whole == "" {
			whole = "0"
		}
		w, err := strconv.ParseUint(whole, 10, 63)
		if err != nil {
			return 0, fmt.Errorf("invalid amount %q: want SP with at most 6 decimals, or an integer with suffix usp", s)
		}
		var f uint64
		if frac != "" {
			f, err = strconv.ParseUint(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("invalid amount %q: want SP with at most 6 decimals, or an integer with suffix usp", s)
			}
		}
		if w > uint64(MaxAmount/MicroPerSpice) {
			return 0, fmt.Errorf("invalid amount %q: more than the maximum %s", s, MaxAmount)
		}
		a = Amount(w)*MicroPerSpice + Amount(f)
	}
	if a <= 0 {
		return 0, fmt.Errorf("invalid amount %q: must be positive", s)
	}
	if a > MaxAmount {
		return 0, fmt.Errorf("invalid amount %q: more than the maximum %s", s, MaxAmount)
	}
	return a, nil
}

// addChecked returns a+b, or false when the sum would overflow int64.
func addChecked(a, b Amount) (Amount, bool) {
	if b > 0 && a > math.MaxInt64-b || b < 0 && a < math.MinInt64-b {
		return 0, false
	}
	return a + b, true
}
