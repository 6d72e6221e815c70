package windows

import (
	"reflect"
	"testing"
	"time"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Skipf("time zone %s: %v", name, err)
	}
	return loc
}

func TestParse(t *testing.T) {
	weekdays := uint8(1<<time.Monday | 1<<time.Tuesday | 1<<time.Wednesday | 1<<time.Thursday | 1<<time.Friday)
	for _, tc := range []struct {
		name, spec string
		want       []Window
		canonical  string
	}{
		{"Empty", "", nil, ""},
		{"Nights", "22:00-07:00", []Window{{AllDays, 22 * 60, 7 * 60}}, "22:00-07:00"},
		{"WholeDay", "sat,sun 00:00-24:00", []Window{{1<<time.Saturday | 1<<time.Sunday, 0, 1440}}, "sun,sat 00:00-24:00"},
		{"Range", "Mon-Fri 18:30-08:00", []Window{{weekdays, 18*60 + 30, 8 * 60}}, "mon,tue,wed,thu,fri 18:30-08:00"},
		{"WrappingRange", "fri-mon 10:00-11:00", []Window{{1<<time.Friday | 1<<time.Saturday | 1<<time.Sunday | 1<<time.Monday, 600, 660}}, "sun,mon,fri,sat 10:00-11:00"},
		{"Two", "mon-fri 18:00-08:00 ; sat,sun 00:00-24:00", []Window{{weekdays, 18 * 60, 8 * 60}, {1<<time.Saturday | 1<<time.Sunday, 0, 1440}}, "mon,tue,wed,thu,fri 18:00-08:00;sun,sat 00:00-24:00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(tc.spec, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.Windows, tc.want) {
				t.Errorf("windows = %+v, want %+v", s.Windows, tc.want)
			}
			if got := s.String(); got != tc.canonical {
				t.Errorf("String() = %q, want %q", got, tc.canonical)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	for _, spec := range []string{"22:00", "22-07", "7:00-8:00", "24:00-01:00", "10:00-10:00", "00:00-00:00",
		"25:00-01:00", "10:60-11:00", "24:01-01:00", "+1:00-02:00", "xyz 10:00-11:00", "mon,,tue 10:00-11:00",
		"10:00-11:00;", "monday 10:00-11:00"} {
		if s, err := Parse(spec, nil); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", spec, s)
		}
	}
}

func TestAvailable(t *testing.T) {
	utc := time.UTC
	at := func(day, h, m int) time.Time { return time.Date(2025, time.June, day, h, m, 0, 0, utc) } // 2025-06-02 is a Monday
	for _, tc := range []struct {
		name string
		spec string
		t    time.Time
		want bool
	}{
		{"AlwaysWithoutWindows", "", at(2, 12, 0), true},
		{"NightBeforeMidnight", "22:00-07:00", at(2, 23, 0), true},
		{"NightAfterMidnight", "22:00-07:00", at(3, 6, 59), true},
		{"NightEndIsExclusive", "22:00-07:00", at(3, 7, 0), false},
		{"NightStartIsInclusive", "22:00-07:00", at(2, 22, 0), true},
		{"Daytime", "22:00-07:00", at(2, 12, 0), false},
		// A Friday-night window covers Saturday morning but not Sunday's.
		{"FridayNightOnSaturday", "fri 22:00-07:00", at(7, 3, 0), true},
		{"FridayNightNotSunday", "fri 22:00-07:00", at(8, 3, 0), false},
		{"FridayNightNotThursday", "fri 22:00-07:00", at(5, 23, 0), false},
		{"WeekendWholeDay", "sat,sun 00:00-24:00", at(8, 23, 59), true},
		{"WeekendNotMonday", "sat,sun 00:00-24:00", at(9, 0, 0), false},
		{"SecondWindow", "mon-fri 18:00-08:00;sat,sun 00:00-24:00", at(7, 12, 0), true},
		{"SundayEveningNotWeekdayWindow", "mon-fri 18:00-08:00", at(8, 19, 0), false},
		{"FridayEveningIntoSaturday", "mon-fri 18:00-08:00", at(7, 7, 59), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(tc.spec, utc)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Available(tc.t); got != tc.want {
				t.Errorf("Available(%s) = %t, want %t", tc.t.Format(time.RFC1123), got, tc.want)
			}
		})
	}
}

func TestAvailableTimeZone(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	s, err := Parse("22:00-07:00", berlin)
	if err != nil {
		t.Fatal(err)
	}
	// 21:30 UTC in June is 23:30 in Berlin (CEST, UTC+2): inside.
	if !s.Available(time.Date(2025, 6, 2, 21, 30, 0, 0, time.UTC)) {
		t.Error("23:30 Berlin time not available")
	}
	// 05:30 UTC is 07:30 in Berlin: outside, although 05:30 is inside in UTC.
	if s.Available(time.Date(2025, 6, 3, 5, 30, 0, 0, time.UTC)) {
		t.Error("07:30 Berlin time available")
	}
}

// TestAvailableDST follows a night window through both daylight-saving
// changes in Berlin, minute by minute, and checks it keeps its wall-clock
// times: 8 real hours on the short night, 10 on the long one.
func TestAvailableDST(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	s, err := Parse("22:00-07:00", berlin)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		night time.Time // 12:00 on the day the night starts
		hours int
	}{
		{"SpringForward", time.Date(2025, 3, 29, 12, 0, 0, 0, berlin), 8},
		{"FallBack", time.Date(2025, 10, 25, 12, 0, 0, 0, berlin), 10},
		{"Ordinary", time.Date(2025, 6, 14, 12, 0, 0, 0, berlin), 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var on time.Duration
			var first, last time.Time
			for m := tc.night; m.Before(tc.night.Add(24 * time.Hour)); m = m.Add(time.Minute) {
				if s.Available(m) {
					on += time.Minute
					if first.IsZero() {
						first = m
					}
					last = m
				}
			}
			if on != time.Duration(tc.hours)*time.Hour {
				t.Errorf("available for %s, want %dh", on, tc.hours)
			}
			if got := first.In(berlin).Format("15:04"); got != "22:00" {
				t.Errorf("first available minute %s, want 22:00", got)
			}
			if got := last.In(berlin).Format("15:04"); got != "06:59" {
				t.Errorf("last available minute %s, want 06:59", got)
			}
		})
	}
}

// TestWindowInSkippedHour: a window from 02:00 to 03:00 does not exist on
// the night clocks go forward (02:00 becomes 03:00); it is empty then.
func TestWindowInSkippedHour(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	s, err := Parse("02:00-03:00", berlin)
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2025, 3, 30, 0, 0, 0, 0, berlin)
	for m := day; m.Before(day.Add(6 * time.Hour)); m = m.Add(time.Minute) {
		if s.Available(m) {
			t.Fatalf("available at %s", m.In(berlin))
		}
	}
}
