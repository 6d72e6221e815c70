package contrib

import (
	"strings"
	"testing"
)

func TestScore(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       Inputs
		score    int
		eligible bool
		reason   string
	}{
		{"Perfect", Inputs{Beats: 100, Expected: 100, Completed: 10}, 100, true, ""},
		{"NewMachine", Inputs{}, 100, true, ""},
		{"MoreBeatsThanExpected", Inputs{Beats: 120, Expected: 100}, 100, true, ""},
		{"HalfUptime", Inputs{Beats: 50, Expected: 100}, 80, true, "up 50.00% of the time"},
		{"AllLost", Inputs{Beats: 100, Expected: 100, Lost: 2}, 70, true, "2 of 2 allocations lost"},
		{"OneInFourLost", Inputs{Beats: 100, Expected: 100, Completed: 3, Lost: 1}, 92, true, "1 of 4 allocations lost"},
		{"Failed", Inputs{Beats: 100, Expected: 100, Completed: 1, Failed: 1}, 97, true, "1 of 2 allocations failed"},
		{"DriftWithinTolerance", Inputs{SlowdownBP: 1000}, 100, true, ""},
		{"DriftHalfway", Inputs{SlowdownBP: 3000}, 90, true, "30.00% slower"},
		{"DriftFull", Inputs{SlowdownBP: 9000}, 80, true, "90.00% slower"},
		{"Dispute", Inputs{Disputes: 1}, 85, true, "1 upheld disputes"},
		{"SpotCheckFailed", Inputs{SpotChecksFailed: 1}, 50, true, "1 failed spot checks"},
		{"DownAndLost", Inputs{Beats: 10, Expected: 100, Lost: 1}, 34, false, "allocations lost"},
		{"FloorAtZero", Inputs{SpotChecksFailed: 3}, 0, false, ""},
		// 100 - 40 × 0.01 = 99.6 points: rounded down to 99.
		{"RoundsDown", Inputs{Beats: 99, Expected: 100}, 99, true, "up 99.00%"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Score(tc.in, DefaultMinScore)
			if r.Score != tc.score || r.Eligible != tc.eligible {
				t.Errorf("score %d eligible %t, want %d %t (reasons %q)", r.Score, r.Eligible, tc.score, tc.eligible, r.Reasons)
			}
			if tc.reason != "" && !strings.Contains(strings.Join(r.Reasons, "; "), tc.reason) {
				t.Errorf("reasons %q lack %q", r.Reasons, tc.reason)
			}
			if tc.score == 100 && len(r.Reasons) != 0 {
				t.Errorf("a perfect score with reasons %q", r.Reasons)
			}
		})
	}
}
