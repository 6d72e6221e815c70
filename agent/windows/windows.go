// Package windows parses and evaluates a contributor's availability
// windows: the times of the week when the machine may be rented. Outside
// them the agent reports itself unavailable (agentapi.Heartbeat.Available)
// and the hub drains its Nomad node.
//
// # Syntax
//
//	spec    = "" | window *( ";" window )
//	window  = [ days " " ] clock "-" clock
//	days    = dayset *( "," dayset )
//	dayset  = day [ "-" day ]              ; a range may wrap: "fri-mon"
//	day     = "mon" | "tue" | "wed" | "thu" | "fri" | "sat" | "sun"
//	clock   = HH ":" MM                    ; 00:00 to 23:59; an end may be 24:00
//
// Examples: "22:00-07:00" (nights, every day), "mon-fri 18:00-08:00;
// sat,sun 00:00-24:00" (evenings and weekends). An empty spec means always
// available. Day names are case-insensitive; spaces around ";" and "," are
// allowed.
//
// A window whose end is not after its start runs past midnight:
// "fri 22:00-07:00" runs from Friday 22:00 to Saturday 07:00, and its days
// are the days it starts on. A window with equal start and end is rejected
// (write 00:00-24:00 for a whole day).
//
// Times are wall-clock times in the schedule's time zone, so a window keeps
// its clock times across daylight-saving changes: "22:00-07:00" lasts 10
// hours on the night clocks go back and 8 on the night they go forward.
// A start or end that falls into a skipped hour is moved forward by the
// length of the gap, as time.Date does.
package windows

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Window is one recurring window.
type Window struct {
	// Days is a bit set of the weekdays the window starts on, bit
	// time.Weekday (bit 0 Sunday). AllDays for every day.
	Days uint8
	// Start and End are minutes after midnight: Start in [0, 1440), End in
	// [0, 1440]. End <= Start means the window ends on the next day.
	Start, End int
}

// AllDays is Window.Days for a window on every day of the week.
const AllDays uint8 = 1<<7 - 1

// Schedule is a set of windows in a time zone. The zero Schedule (no
// windows) is always available.
type Schedule struct {
	Windows []Window
	// Location is the windows' time zone; nil means UTC.
	Location *time.Location
}

// dayNames are the accepted day names, indexed by time.Weekday.
var dayNames = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// maxWindows bounds a spec, which comes from a command line or a file.
const maxWindows = 64

// Parse parses spec (see the package documentation) with its clock times
// in loc (nil: UTC).
func Parse(spec string, loc *time.Location) (Schedule, error) {
	s := Schedule{Location: loc}
	if strings.TrimSpace(spec) == "" {
		return s, nil
	}
	parts := strings.Split(spec, ";")
	if len(parts) > maxWindows {
		return Schedule{}, fmt.Errorf("windows: %d windows, at most %d", len(parts), maxWindows)
	}
	for _, p := range parts {
		w, err := parseWindow(strings.TrimSpace(p))
		if err != nil {
			return Schedule{}, fmt.Errorf("windows: %q: %w", strings.TrimSpace(p), err)
		}
		s.Windows = append(s.Windows, w)
	}
	return s, nil
}

func parseWindow(p string) (Window, error) {
	if p == "" {
		return Window{}, errors.New("empty window")
	}
	w := Window{Days: AllDays}
	clocks := p
	if i := strings.LastIndexByte(p, ' '); i >= 0 {
		days, err := parseDays(strings.TrimSpace(p[:i]))
		if err != nil {
			return Window{}, err
		}
		w.Days, clocks = days, p[i+1:]
	}
	from, to, ok := strings.Cut(clocks, "-")
	if !ok {
		return Window{}, errors.New(`want HH:MM-HH:MM, e.g. "22:00-07:00"`)
	}
	var err error
	if w.Start, err = parseClock(from); err != nil {
		return Window{}, err
	}
	if w.Start == 24*60 {
		return Window{}, errors.New("a window cannot start at 24:00")
	}
	if w.End, err = parseClock(to); err != nil {
		return Window{}, err
	}
	if w.Start == w.End || (w.Start == 0 && w.End == 0) {
		return Window{}, errors.New("start equals end; write 00:00-24:00 for a whole day")
	}
	return w, nil
}

// parseDays parses "mon-fri,sun".
func parseDays(s string) (uint8, error) {
	var set uint8
	for _, ds := range strings.Split(s, ",") {
		ds = strings.TrimSpace(ds)
		a, b, isRange := strings.Cut(ds, "-")
		from, err := parseDay(strings.TrimSpace(a))
		if err != nil {
			return 0, err
		}
		to := from
		if isRange {
			if to, err = parseDay(strings.TrimSpace(b)); err != nil {
				return 0, err
			}
		}
		for d := from; ; d = (d + 1) % 7 {
			set |= 1 << d
			if d == to {
				break
			}
		}
	}
	return set, nil
}

func parseDay(s string) (int, error) {
	for i, n := range dayNames {
		if strings.EqualFold(s, n) {
			return i, nil
		}
	}
	return 0, fmt.Errorf("day %q: want one of mon, tue, wed, thu, fri, sat, sun", s)
}

// parseClock parses HH:MM into minutes after midnight; 24:00 is 1440.
func parseClock(s string) (int, error) {
	hh, mm, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || len(hh) != 2 || len(mm) != 2 {
		return 0, fmt.Errorf("time %q: want HH:MM", s)
	}
	if !digits(hh) || !digits(mm) {
		return 0, fmt.Errorf("time %q: want HH:MM", s)
	}
	h, _ := strconv.Atoi(hh)
	m, _ := strconv.Atoi(mm)
	if m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("time %q: want 00:00 to 23:59, or 24:00", s)
	}
	return h*60 + m, nil
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Available reports whether t is inside one of the windows. A schedule
// without windows is always available.
func (s Schedule) Available(t time.Time) bool {
	if len(s.Windows) == 0 {
		return true
	}
	loc := s.Location
	if loc == nil {
		loc = time.UTC
	}
	lt := t.In(loc)
	y, m, d := lt.Date()
	for _, w := range s.Windows {
		// Only a window that started today or yesterday can cover t.
		for _, day := range []int{d - 1, d} {
			midnight := time.Date(y, m, day, 0, 0, 0, 0, loc)
			if w.Days&(1<<midnight.Weekday()) == 0 {
				continue
			}
			start := time.Date(y, m, day, 0, w.Start, 0, 0, loc)
			endDay := day
			if w.End <= w.Start {
				endDay++
			}
			end := time.Date(y, m, endDay, 0, w.End, 0, 0, loc)
			if !t.Before(start) && t.Before(end) {
				return true
			}
		}
	}
	return false
}

// String is the schedule in canonical form (Parse(s.String()) gives s
// back); days are listed one by one, and omitted when all are set.
func (s Schedule) String() string {
	var b strings.Builder
	for i, w := range s.Windows {
		if i > 0 {
			b.WriteString(";")
		}
		if w.Days&AllDays != AllDays {
			first := true
			for d := 0; d < 7; d++ {
				if w.Days&(1<<d) != 0 {
					if !first {
						b.WriteString(",")
					}
					b.WriteString(dayNames[d])
					first = false
				}
			}
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%02d:%02d-%02d:%02d", w.Start/60, w.Start%60, w.End/60, w.End%60)
	}
	return b.String()
}
