package payout

import (
	"strings"

	"github.com/spiceroute/spiceroute/hub/coded"
)

// Codes of invalid payout details.
const (
	CodeInvalidIBAN      coded.Code = "invalid_iban"
	CodeInvalidBIC       coded.Code = "invalid_bic"
	CodeInvalidName      coded.Code = "invalid_name"
	CodeInvalidThreshold coded.Code = "invalid_threshold"
	CodeInvalidPeriod    coded.Code = "invalid_period"
)

// IBAN is an International Bank Account Number in its electronic form:
// upper case, no spaces, e.g. "DE89370400440532013000".
type IBAN string

// ibanLengths is the length of an IBAN by country, from the IBAN registry
// (ISO 13616-1; SWIFT, the registration authority, publishes it).
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
	"BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
	"EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
	"GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
	"JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25,
	"MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
	"NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
	"SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
	"TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}

// ParseIBAN parses an IBAN in its electronic or printed form (groups of
// four separated by spaces; lower case is accepted). It checks the
// country's length from the IBAN registry and the check digits: ISO 13616
// with ISO 7064 MOD 97-10, the four first characters moved to the end,
// letters replaced by 10..35, the number mod 97 must be 1.
func ParseIBAN(s string) (IBAN, error) {
	v := strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
	if len(v) < 4 {
		return "", coded.Errorf(CodeInvalidIBAN, "IBAN %q is too short", s)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		ok := c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i < 2 {
			ok = c >= 'A' && c <= 'Z'
		} else if i < 4 {
			ok = c >= '0' && c <= '9'
		}
		if !ok {
			return "", coded.Errorf(CodeInvalidIBAN, "IBAN %q: want a country code, two check digits and letters or digits", s)
		}
	}
	want, ok := ibanLengths[v[:2]]
	if !ok {
		return "", coded.Errorf(CodeInvalidIBAN, "IBAN %q: %s is not a country in the IBAN registry", s, v[:2])
	}
	if len(v) != want {
		return "", coded.Errorf(CodeInvalidIBAN, "IBAN %q: an IBAN from %s has %d characters, this one %d", s, v[:2], want, len(v))
	}
	if mod97(v[4:]+v[:4]) != 1 {
		return "", coded.Errorf(CodeInvalidIBAN, "IBAN %q: the check digits are wrong (a typo?)", s)
	}
	return IBAN(v), nil
}

// mod97 is ISO 7064 MOD 97-10 of s (digits and upper-case letters, letters
// counting as 10..35), computed piecewise so it never overflows.
func mod97(s string) int {
	r := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			d := int(c-'A') + 10
			r = (r*100 + d) % 97
		} else {
			r = (r*10 + int(c-'0')) % 97
		}
	}
	return r
}

// Country is the IBAN's ISO 3166 country code.
func (i IBAN) Country() string {
	if len(i) < 2 {
		return ""
	}
	return string(i[:2])
}

// Printed is the IBAN in its printed form, groups of four: "DE89 3704 ...".
func (i IBAN) Printed() string {
	var b strings.Builder
	for k := 0; k < len(i); k += 4 {
		if k > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(string(i[k:min(k+4, len(i))]))
	}
	return b.String()
}

// BIC is a Business Identifier Code (ISO 9362), e.g. "COBADEFFXXX".
type BIC string

// ParseBIC parses a BIC: 4 characters for the institution, a 2-letter ISO
// 3166 country code, 2 for the location and optionally 3 for the branch
// (ISO 9362:2014; the pattern of BICFIDec2014Identifier in ISO 20022). An
// empty s is the empty BIC (none given).
func ParseBIC(s string) (BIC, error) {
	v := strings.ToUpper(strings.TrimSpace(s))
	if v == "" {
		return "", nil
	}
	if len(v) != 8 && len(v) != 11 {
		return "", coded.Errorf(CodeInvalidBIC, "BIC %q: want 8 or 11 characters", s)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		alnum := c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		letter := c >= 'A' && c <= 'Z'
		if i >= 4 && i < 6 && !letter || !alnum {
			return "", coded.Errorf(CodeInvalidBIC, "BIC %q: want 4 letters or digits, a 2-letter country code, 2 and optionally 3 more letters or digits", s)
		}
	}
	return BIC(v), nil
}

// Country is the BIC's ISO 3166 country code ("" for no BIC).
func (b BIC) Country() string {
	if len(b) < 6 {
		return ""
	}
	return string(b[4:6])
}
