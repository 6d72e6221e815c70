// Package payout pays contributors their Spice in money.
//
// A contributor keeps a payout Profile: the legal name and IBAN (and
// optionally BIC) to pay, and a threshold below which it is not paid, so
// that bank fees never eat a payout (at least MinThreshold). Payouts are
// made per Period, a calendar month: a payout run for a period (scheduled
// once the period has ended, or started by an operator) pays every
// contributor whose available Spice, summed over its contributor accounts,
// is at least its threshold. Withheld contributors (Withholds) are skipped
// and the reason is recorded on the run.
//
// Spice becomes money at the hub's redemption rate, an integer number of
// euro cents per SP. The euro amount is rounded down to whole cents, and
// only the µSP those cents are worth are taken (rounded up to whole µSP,
// which never exceeds what is available): the sub-cent remainder stays on
// the contributor's account for the next payout, and the payout says so. The
// hub keeps nothing for itself by rounding but a fraction of one µSP.
//
// Each payout is one ledger transfer per contributor account, from the
// account to the hub's payout account (ledger.KindPayout), linked so that
// they commit together, with IDs derived from the hub, the owner, the
// period and the account ([TransferID]): a run is idempotent at the ledger
// too. A run is recorded with its payouts before any transfer is made and
// marked complete after, so a run that stops midway (a crash, the ledger
// restarting) completes with the same transfers when run again, and a
// second run of a complete period pays nothing.
//
// The paid payouts of a run are one batch, handed to a [Rail]. The first
// rail, [FileRail], writes the batch as files a treasurer imports into the
// hub's bank: CSV and an ISO 20022 pain.001.001.10 customer credit transfer
// initiation for SEPA credit transfers (see pain001.go).
package payout

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/bits"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
)

// MinThreshold is the lowest payout threshold a contributor may set: 1 SP.
const MinThreshold = ledger.MicroPerSpice

// TransferCode marks payout transfers in the ledger (ledger.Transfer.Code).
const TransferCode uint16 = 200

// MaxRateCents bounds the redemption rate (10,000 EUR per SP), which keeps
// the conversion's intermediate products within 128 bits.
const MaxRateCents = 1_000_000

// Config configures payouts. The zero Config means payouts are off.
type Config struct {
	// RateCents is the redemption rate: euro cents paid per SP. Required.
	RateCents int64
	// Debtor is the hub's own bank account, which pays.
	Debtor Party
	// Dir is where FileRail writes batch files (created if missing).
	Dir string
	// Schedule runs the previous period's payout automatically once that
	// period has been over for Delay (default 1h), checking every
	// CheckInterval (default 10m). Off by default: runs are then started
	// by an operator.
	Schedule      bool
	Delay         time.Duration
	CheckInterval time.Duration
}

// Enabled reports whether any payout setting is made (the hub then
// requires a valid Config).
func (c Config) Enabled() bool {
	return c.RateCents != 0 || c.Dir != "" || c.Debtor != (Party{}) || c.Schedule
}

// Validate checks c and normalizes the debtor's IBAN and BIC.
func (c *Config) Validate() error {
	if c.RateCents <= 0 || c.RateCents > MaxRateCents {
		return fmt.Errorf("payout: the redemption rate must be 1 to %d euro cents per SP, not %d", MaxRateCents, c.RateCents)
	}
	if c.Dir == "" {
		return fmt.Errorf("payout: a directory for batch files is required")
	}
	if err := c.Debtor.normalize(); err != nil {
		return fmt.Errorf("payout: the hub's bank account: %w", err)
	}
	if c.Delay <= 0 {
		c.Delay = time.Hour
	}
	if c.CheckInterval <= 0 {
		c.CheckInterval = 10 * time.Minute
	}
	return nil
}

// Party is a bank account holder and account.
type Party struct {
	Name string `json:"name"`
	IBAN IBAN   `json:"iban"`
	BIC  BIC    `json:"bic,omitempty"`
}

func (p *Party) normalize() error {
	name, err := ValidName(p.Name)
	if err != nil {
		return err
	}
	iban, err := ParseIBAN(string(p.IBAN))
	if err != nil {
		return err
	}
	bic, err := ParseBIC(string(p.BIC))
	if err != nil {
		return err
	}
	p.Name, p.IBAN, p.BIC = name, iban, bic
	return nil
}

// MaxName is the longest account holder name, in characters: the SEPA
// rulebook's limit for names in credit transfers.
const MaxName = 70

// ValidName checks an account holder's name and returns it trimmed: 1 to
// MaxName characters of letters, digits, spaces and the punctuation of the
// SEPA character set (/ - ? : ( ) . , ' +). Letters outside Latin are
// accepted; banks transliterate them.
func ValidName(s string) (string, error) {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" || utf8.RuneCountInString(s) > MaxName {
		return "", coded.Errorf(CodeInvalidName, "the account holder's name must be 1 to %d characters", MaxName)
	}
	for _, r := range s {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.Is(unicode.Mn, r) && !strings.ContainsRune(" /-?:().,'+", r) {
			return "", coded.Errorf(CodeInvalidName, "the account holder's name %q has %q: use letters, digits, spaces and / - ? : ( ) . , ' +", s, r)
		}
	}
	return s, nil
}

// Profile is where and when a contributor is paid.
type Profile struct {
	Owner     string        `json:"owner"`      // the contributor (principal name)
	LegalName string        `json:"legal_name"` // the account holder, as the bank knows them
	IBAN      IBAN          `json:"iban"`
	BIC       BIC           `json:"bic,omitempty"`
	Threshold ledger.Amount `json:"threshold"` // µSP; paid only from this much on
	UpdatedAt time.Time     `json:"updated_at"`
}

// ProfileRequest is what a contributor sets: the Profile's fields as typed.
type ProfileRequest struct {
	LegalName string        `json:"legal_name"`
	IBAN      string        `json:"iban"`
	BIC       string        `json:"bic,omitempty"`
	Threshold ledger.Amount `json:"threshold"`
}

// NewProfile validates r and returns owner's profile.
func NewProfile(owner string, r ProfileRequest) (Profile, error) {
	p := Profile{Owner: owner, Threshold: r.Threshold}
	party := Party{Name: r.LegalName, IBAN: IBAN(r.IBAN), BIC: BIC(r.BIC)}
	if err := party.normalize(); err != nil {
		return p, err
	}
	p.LegalName, p.IBAN, p.BIC = party.Name, party.IBAN, party.BIC
	if r.Threshold < MinThreshold || r.Threshold > ledger.MaxAmount {
		return p, coded.Errorf(CodeInvalidThreshold, "the payout threshold %s must be at least %s (so bank fees never eat a payout) and at most %s",
			r.Threshold, MinThreshold, ledger.MaxAmount)
	}
	return p, nil
}

// State is where a payout or a run is.
type State string

const (
	Planned  State = "planned"  // recorded; its transfers may or may not have committed
	Paid     State = "paid"     // its transfers committed; it is in the run's batch
	Failed   State = "failed"   // the ledger refused its transfers (Detail says why); nothing moved
	Withheld State = "withheld" // not paid this period (Detail is the reason)
	Complete State = "complete" // a run: every payout paid, failed or withheld, the batch handed over
)

// Transfer is one ledger transfer of a payout.
type Transfer struct {
	Account ledger.ID     `json:"account"` // the contributor account debited
	ID      ledger.ID     `json:"id"`
	Amount  ledger.Amount `json:"amount"`
}

// Payout is one contributor's payout in a run.
type Payout struct {
	Batch     int64  `json:"batch"`
	Period    Period `json:"period"`
	Owner     string `json:"owner"`
	LegalName string `json:"legal_name"`
	IBAN      IBAN   `json:"iban"`
	BIC       BIC    `json:"bic,omitempty"`
	// Available is what the contributor's accounts had available when the
	// run was planned; Amount the µSP paid out of it, worth Cents at the
	// run's rate. Carried (Available - Amount) stays on the accounts.
	Available ledger.Amount `json:"available"`
	Amount    ledger.Amount `json:"amount"`
	Cents     int64         `json:"eur_cents"`
	Carried   ledger.Amount `json:"carried"`
	Transfers []Transfer    `json:"transfers"`
	// EndToEndID identifies the payment through the banks (ISO 20022
	// EndToEndId): the first transfer's ID as 32 hex digits.
	EndToEndID string `json:"end_to_end_id,omitempty"`
	State      State  `json:"state"`
	// Detail says why a payout failed or was withheld, and how it was rounded.
	Detail string `json:"detail,omitempty"`
}

// EUR formats cents as euros: "12.34".
func EUR(cents int64) string {
	sign := ""
	u := uint64(cents)
	if cents < 0 {
		sign, u = "-", uint64(-(cents+1))+1
	}
	return fmt.Sprintf("%s%d.%02d", sign, u/100, u%100)
}

// Run is the payout run of one period.
type Run struct {
	Batch       int64      `json:"batch"` // the run's number, also its batch's
	Period      Period     `json:"period"`
	State       State      `json:"state"` // planned or complete
	RateCents   int64      `json:"rate_cents_per_sp"`
	Debtor      Party      `json:"debtor"`
	StartedBy   string     `json:"started_by"`
	CreatedAt   time.Time  `json:"created_at"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	// Totals over the paid payouts, set when the run completes.
	Paid       int           `json:"paid"`
	TotalUSP   ledger.Amount `json:"total_usp"`
	TotalCents int64         `json:"total_eur_cents"`
	// Files are the rail's references to the handed-over batch (for
	// FileRail, the files' paths).
	Files   []string `json:"files,omitempty"`
	Payouts []Payout `json:"payouts,omitempty"`
}

// Convert says how much of available µSP is paid at rate euro cents per SP:
// cents = ⌊available × rate / 10⁶⌋, and amount = ⌈cents × 10⁶ / rate⌉, the
// µSP those cents are worth, which is at most available. Exact integer
// arithmetic in 128 bits; rate must be 1..MaxRateCents and available ≥ 0.
func Convert(available ledger.Amount, rate int64) (amount ledger.Amount, cents int64) {
	if available <= 0 || rate <= 0 || rate > MaxRateCents {
		return 0, 0
	}
	const micro = uint64(ledger.MicroPerSpice)
	hi, lo := bits.Mul64(uint64(available), uint64(rate))
	c, _ := bits.Div64(hi, lo, micro) // hi < rate/2 < micro: no overflow
	hi, lo = bits.Mul64(c, micro)
	q, r := bits.Div64(hi, lo, uint64(rate)) // c×10⁶ ≤ available×rate: hi < rate
	if r != 0 {
		q++
	}
	return ledger.Amount(q), int64(c)
}

// TransferID is the ID of the payout transfer from a contributor account
// in a period: the first 16 bytes of SHA-256("spiceroute/payout/v1\x00" ||
// hub || 0 || owner || 0 || period || 0 || account ID). Deterministic, so a
// period's run can never pay an account twice.
func TransferID(hub, owner string, period Period, account ledger.ID) ledger.ID {
	h := sha256.New()
	h.Write([]byte("spiceroute/payout/v1\x00" + hub + "\x00" + owner + "\x00" + period.String() + "\x00"))
	h.Write(account[:])
	var id ledger.ID
	copy(id[:], h.Sum(nil))
	return id
}

// Withholds says whether a contributor's payout is withheld in a period
// (an operator's decision, or the reputation system's after a failed spot
// check). Safe for concurrent use.
type Withholds interface {
	Withheld(ctx context.Context, owner string, period Period) (reason string, withheld bool, err error)
}

// WithholdsFunc adapts a function to Withholds.
type WithholdsFunc func(ctx context.Context, owner string, period Period) (string, bool, error)

func (f WithholdsFunc) Withheld(ctx context.Context, owner string, period Period) (string, bool, error) {
	return f(ctx, owner, period)
}

// Withhold holds back a contributor's payouts: in one period, or (a zero
// Period) in every period until it is released.
type Withhold struct {
	ID         int64      `json:"id"`
	Owner      string     `json:"owner"`
	Period     Period     `json:"period,omitzero"`
	Reason     string     `json:"reason"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
	ReleasedAt *time.Time `json:"released_at,omitempty"`
	ReleasedBy string     `json:"released_by,omitempty"`
}

// MaxReason is the longest withhold reason, in bytes.
const MaxReason = 500
