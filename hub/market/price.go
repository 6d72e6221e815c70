package market

import (
	"fmt"
	"math/big"
	"time"

	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
)

// Prices are a hub's unit prices, in µSP per resource-hour.
type Prices struct {
	CPU    ledger.Amount `json:"cpu_core_hour"`   // per 1000 MHz of CPU for one hour
	Memory ledger.Amount `json:"memory_gib_hour"` // per GiB (1024 MB) of memory for one hour
	Disk   ledger.Amount `json:"disk_gib_hour"`   // per GiB (1024 MB) of disk for one hour
}

// DefaultPrices are where a new hub starts: 0.04 SP per core-hour, 0.01 SP
// per GiB-hour of memory, 0.0002 SP per GiB-hour of disk.
var DefaultPrices = Prices{CPU: 40_000, Memory: 10_000, Disk: 200}

// CodeInvalidPrice rejects a price that is negative or absurd.
const CodeInvalidPrice coded.Code = "invalid_price"

// Validate checks that every price is between 0 and 1,000 SP per unit-hour.
func (p Prices) Validate() error {
	for name, v := range map[string]ledger.Amount{"cpu_core_hour": p.CPU, "memory_gib_hour": p.Memory, "disk_gib_hour": p.Disk} {
		if v < 0 || v > 1000*ledger.MicroPerSpice {
			return coded.Errorf(CodeInvalidPrice, "%s: %d µSP is outside 0 to 1000 SP", name, int64(v))
		}
	}
	return nil
}

// Resources are what is rented: CPU in MHz, memory and disk in MB.
type Resources struct {
	CPUMHz   int64 `json:"cpu_mhz"`
	MemoryMB int64 `json:"memory_mb"`
	DiskMB   int64 `json:"disk_mb"`
}

// Resource names the priced resources.
type Resource string

const (
	CPU    Resource = "cpu"
	Memory Resource = "memory"
	Disk   Resource = "disk"
)

// LineCost is the cost of one resource over a duration: what an invoice line
// shows and what settlement charges.
type LineCost struct {
	Resource  Resource      `json:"resource"`
	Quantity  int64         `json:"quantity"` // MHz or MB
	UnitPrice ledger.Amount `json:"unit_price"`
	Unit      string        `json:"unit"` // what UnitPrice is per
	Millis    int64         `json:"millis"`
	Amount    ledger.Amount `json:"amount"`
}

// Breakdown prices each resource of r held for d at prices p:
//
//	cpu    = price · MHz/1000 · ms/3,600,000
//	memory = price · MB/1024  · ms/3,600,000
//	disk   = price · MB/1024  · ms/3,600,000
//
// each computed exactly and rounded down to the µSP (in the renter's
// favour). d is counted in whole milliseconds. Lines with a zero quantity
// are left out.
func (p Prices) Breakdown(r Resources, d time.Duration) ([]LineCost, error) {
	if r.CPUMHz < 0 || r.MemoryMB < 0 || r.DiskMB < 0 || d < 0 {
		return nil, fmt.Errorf("market: negative resources or duration")
	}
	ms := d.Milliseconds()
	var out []LineCost
	for _, l := range []struct {
		res   Resource
		qty   int64
		price ledger.Amount
		per   int64
		unit  string
	}{{CPU, r.CPUMHz, p.CPU, 1000, "core-hour"}, {Memory, r.MemoryMB, p.Memory, 1024, "GiB-hour"}, {Disk, r.DiskMB, p.Disk, 1024, "GiB-hour"}} {
		if l.qty == 0 {
			continue
		}
		num := new(big.Int).Mul(big.NewInt(int64(l.price)), big.NewInt(l.qty))
		num.Mul(num, big.NewInt(ms))
		amt := num.Quo(num, big.NewInt(l.per*3_600_000)) // non-negative: Quo rounds down
		if !amt.IsInt64() || amt.Int64() > int64(ledger.MaxAmount) {
			return nil, fmt.Errorf("market: %s cost exceeds %s", l.res, ledger.MaxAmount)
		}
		out = append(out, LineCost{Resource: l.res, Quantity: l.qty, UnitPrice: l.price, Unit: l.unit, Millis: ms, Amount: ledger.Amount(amt.Int64())})
	}
	return out, nil
}

// Cost is the sum of Breakdown's lines.
func (p Prices) Cost(r Resources, d time.Duration) (ledger.Amount, error) {
	lines, err := p.Breakdown(r, d)
	if err != nil {
		return 0, err
	}
	var sum ledger.Amount
	for _, l := range lines {
		sum += l.Amount
	}
	if sum > ledger.MaxAmount {
		return 0, fmt.Errorf("market: cost exceeds %s", ledger.MaxAmount)
	}
	return sum, nil
}

// Quote is the most a job can cost: its resources for its maximum runtime
// at the prices in force when it was admitted. The hold placed on the
// renter's account is Max; metering later charges only what ran.
type Quote struct {
	Prices Prices `json:"prices"`
	// Region is the region whose prices were used ("" the hub-wide ones).
	Region     string        `json:"region,omitempty"`
	Resources  Resources     `json:"resources"` // totals over every instance
	MaxRuntime time.Duration `json:"max_runtime_ns"`
	Max        ledger.Amount `json:"max"`
	// AcceptedCPU is the most the job pays per core-hour: the renter's
	// stated maximum, or Prices.CPU. A machine whose floor is above
	// Prices.CPU is paid its floor, never more than AcceptedCPU, and Max
	// is computed at AcceptedCPU. 0 in quotes from before matching: Prices.CPU.
	AcceptedCPU ledger.Amount `json:"accepted_cpu_core_hour,omitempty"`
}

// CPUPrice is what an allocation on a machine with the given floor pays per
// core-hour: the quote's price, or the floor where that is higher, at most
// AcceptedCPU.
func (q Quote) CPUPrice(floor ledger.Amount) ledger.Amount {
	p := max(q.Prices.CPU, floor)
	if q.AcceptedCPU > 0 {
		p = min(p, q.AcceptedCPU)
	}
	return p
}

// CodeOverMaxPrice rejects a job whose quote is above the renter's stated maximum.
const CodeOverMaxPrice coded.Code = "over_max_price"

// NewQuote prices r for runtime; maxPrice (0 = none) is the renter's limit.
func NewQuote(p Prices, r Resources, runtime time.Duration, maxPrice ledger.Amount) (Quote, error) {
	cost, err := p.Cost(r, runtime)
	if err != nil {
		return Quote{}, coded.Errorf(CodeInvalidPrice, "%v", err)
	}
	q := Quote{Prices: p, Resources: r, MaxRuntime: runtime, Max: cost}
	if maxPrice > 0 && cost > maxPrice {
		return q, coded.Errorf(CodeOverMaxPrice, "the job costs up to %s (%d MHz, %d MB memory, %d MB disk for %s), more than your maximum price %s",
			cost, r.CPUMHz, r.MemoryMB, r.DiskMB, runtime, maxPrice)
	}
	return q, nil
}

// PriceChange is one entry of a hub's price history.
type PriceChange struct {
	Prices
	// Region is where the prices apply; "" is the whole hub.
	Region string `json:"region"`
	// SetBy is the operator who set the prices, or SetByMarket.
	SetBy string    `json:"set_by"`
	SetAt time.Time `json:"set_at"`
	// Load is what moved a market price; nil for an operator's.
	Load *Load `json:"load,omitempty"`
}
