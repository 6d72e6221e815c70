package ledger

import "testing"

func TestAmountSP(t *testing.T) {
	for a, want := range map[Amount]string{0: "0", 40_000: "0.04", 12 * MicroPerSpice: "12", 1: "0.000001", -1_500_000: "-1.5", 10 * MicroPerSpice: "10"} {
		if got := a.SP(); got != want {
			t.Errorf("%d µSP: %q, want %q", int64(a), got, want)
		}
	}
}
