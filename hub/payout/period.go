package payout

import (
	"fmt"
	"time"

	"github.com/spiceroute/spiceroute/hub/coded"
)

// Period is a calendar month in UTC, the unit payouts are made in. Its text
// form is "2026-11" (ISO 8601 year and month). The zero Period is invalid.
type Period struct {
	year  int
	month time.Month
}

// PeriodOf is the period t falls in (in UTC).
func PeriodOf(t time.Time) Period {
	t = t.UTC()
	return Period{t.Year(), t.Month()}
}

// ParsePeriod parses "YYYY-MM" with a year from 2000 to 9999.
func ParsePeriod(s string) (Period, error) {
	bad := func() (Period, error) {
		return Period{}, coded.Errorf(CodeInvalidPeriod, "period %q: want a month as YYYY-MM, e.g. 2026-11", s)
	}
	if len(s) != 7 || s[4] != '-' {
		return bad()
	}
	n := 0
	for i, c := range []byte(s) {
		if i == 4 {
			continue
		}
		if c < '0' || c > '9' {
			return bad()
		}
		if i < 4 {
			n = n*10 + int(c-'0')
		}
	}
	m := time.Month(int(s[5]-'0')*10 + int(s[6]-'0'))
	if n < 2000 || m < 1 || m > 12 {
		return bad()
	}
	return Period{n, m}, nil
}

// IsZero reports whether p is the zero (invalid) Period.
func (p Period) IsZero() bool { return p.year == 0 }

func (p Period) String() string {
	if p.IsZero() {
		return ""
	}
	return fmt.Sprintf("%04d-%02d", p.year, int(p.month))
}

// Start is the first instant of the period.
func (p Period) Start() time.Time { return time.Date(p.year, p.month, 1, 0, 0, 0, 0, time.UTC) }

// End is the first instant after the period (the next one's Start).
func (p Period) End() time.Time { return p.Start().AddDate(0, 1, 0) }

// Prev is the period before p.
func (p Period) Prev() Period { return PeriodOf(p.Start().AddDate(0, -1, 0)) }

// MarshalText implements encoding.TextMarshaler (and so JSON).
func (p Period) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (and so JSON).
func (p *Period) UnmarshalText(b []byte) error {
	v, err := ParsePeriod(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}
