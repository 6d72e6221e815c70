package windows

import (
	"reflect"
	"testing"
	"time"
)

// FuzzParse: Parse never panics, and what it accepts prints in a canonical
// form that parses back to the same schedule.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"22:00-07:00", "mon-fri 18:00-08:00;sat,sun 00:00-24:00", "fri-mon 10:00-11:00", ""} {
		f.Add(s)
	}
	at := time.Date(2025, 3, 30, 1, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := Parse(spec, time.UTC)
		if err != nil {
			return
		}
		again, err := Parse(s.String(), time.UTC)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", s.String(), spec, err)
		}
		if !reflect.DeepEqual(again.Windows, s.Windows) {
			t.Fatalf("%q → %q → %+v, want %+v", spec, s.String(), again.Windows, s.Windows)
		}
		for h := 0; h < 48; h++ {
			if s.Available(at.Add(time.Duration(h)*time.Hour)) != again.Available(at.Add(time.Duration(h)*time.Hour)) {
				t.Fatal("round trip changed availability")
			}
		}
	})
}
