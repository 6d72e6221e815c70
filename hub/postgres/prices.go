package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
)

// Unit prices per region (migrations 002 and 006): every change is a row of
// unit_prices and the newest row of a region is in force. Region "" is the
// whole hub; a region without prices of its own uses the hub-wide ones.

// pricesLock is the key of the transaction-level advisory lock every price
// write holds, so that a market price is recorded only over the price it
// was computed from (see RecordMarketPrice).
const pricesLock = 0x5350_7072_6963_6573 // "SPprices"

// Prices returns the hub-wide unit prices in force: the newest set, or
// market.DefaultPrices if none was ever set.
func (s *Store) Prices(ctx context.Context) (market.Prices, error) {
	return s.PricesIn(ctx, "")
}

// PricesIn returns the unit prices in force in region: its newest, else
// the hub-wide ones.
//
// Admission asks on every job: answers are cached for PriceCacheTTL.
// Prices set through this store are in force at once; set through another
// hub replica sharing the database, within PriceCacheTTL.
func (s *Store) PricesIn(ctx context.Context, region string) (market.Prices, error) {
	now := time.Now()
	if c, ok := s.prices.Load(region); ok && now.Before(c.(cachedPrices).expires) {
		return c.(cachedPrices).p, nil
	}
	st, err := s.PriceState(ctx, region)
	if err != nil {
		return st.Current, err
	}
	s.prices.Store(region, cachedPrices{p: st.Current, expires: now.Add(PriceCacheTTL)})
	return st.Current, nil
}

// PriceCacheTTL is how long PricesIn trusts an answer it read.
const PriceCacheTTL = time.Second

type cachedPrices struct {
	p       market.Prices
	expires time.Time
}

// PriceState returns region's prices in force, the base the market moves
// them from (the newest prices an operator set for the region, else for
// the whole hub, else market.DefaultPrices) and the ID of the region's
// newest row (0: none).
func (s *Store) PriceState(ctx context.Context, region string) (market.PriceState, error) {
	st := market.PriceState{Current: market.DefaultPrices, Base: market.DefaultPrices}
	// One row per (is it the region's, is it an operator's) pair: the
	// newest of each, the region's own first.
	rows, err := s.pool.Query(ctx, `
		SELECT DISTINCT ON (region = $1, by_market) id, region = $1, by_market, cpu_core_hour, memory_gib_hour, disk_gib_hour
		FROM unit_prices WHERE region IN ($1, '')
		ORDER BY region = $1, by_market, id DESC`, region)
	if err != nil {
		return st, fmt.Errorf("postgres: prices of region %q: %w", region, err)
	}
	defer rows.Close()
	type newest struct {
		id int64
		p  market.Prices
	}
	var own, hub [2]*newest // [operator, market]
	for rows.Next() {
		var n newest
		var mine, byMarket bool
		var cpu, mem, disk int64
		if err := rows.Scan(&n.id, &mine, &byMarket, &cpu, &mem, &disk); err != nil {
			return st, fmt.Errorf("postgres: prices of region %q: %w", region, err)
		}
		n.p = market.Prices{CPU: ledger.Amount(cpu), Memory: ledger.Amount(mem), Disk: ledger.Amount(disk)}
		i := 0
		if byMarket {
			i = 1
		}
		if mine {
			own[i] = &n
		} else {
			hub[i] = &n
		}
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("postgres: prices of region %q: %w", region, err)
	}
	newer := func(a, b *newest) *newest {
		if a == nil || (b != nil && b.id > a.id) {
			return b
		}
		return a
	}
	if cur := newer(own[0], own[1]); cur != nil {
		st.Current, st.Version = cur.p, cur.id
	} else if cur := newer(hub[0], hub[1]); cur != nil {
		st.Current = cur.p
	}
	if own[0] != nil {
		st.Base = own[0].p
	} else if hub[0] != nil {
		st.Base = hub[0].p
	}
	return st, nil
}

// SetPrices puts new hub-wide unit prices in force and records who set them.
func (s *Store) SetPrices(ctx context.Context, p market.Prices, by string) error {
	return s.SetPricesIn(ctx, "", p, by)
}

// SetPricesIn puts new unit prices in force in region ("" the whole hub),
// set by an operator: they are the region's new base price, which the
// market moves from.
func (s *Store) SetPricesIn(ctx context.Context, region string, p market.Prices, by string) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if by == market.SetByMarket {
		return fmt.Errorf("postgres: set prices: %q is the market's name", by)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(pricesLock)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO unit_prices (region, cpu_core_hour, memory_gib_hour, disk_gib_hour, set_by) VALUES ($1, $2, $3, $4, $5)`,
			region, int64(p.CPU), int64(p.Memory), int64(p.Disk), by)
		return err
	})
	s.prices.Clear() // a hub-wide price is every region's fallback
	if err != nil {
		return fmt.Errorf("postgres: set prices: %w", err)
	}
	return nil
}

// errStale ends a market price's transaction when the region's price has
// moved since it was computed.
var errStale = errors.New("stale")

// RecordMarketPrice puts p in force in region, set by the market with the
// load that moved it, provided the region's newest row is still version
// (0: the region had none); otherwise it records nothing and returns false.
func (s *Store) RecordMarketPrice(ctx context.Context, region string, version int64, p market.Prices, l market.Load) (bool, error) {
	if err := p.Validate(); err != nil {
		return false, err
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(pricesLock)); err != nil {
			return err
		}
		var newest int64
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM unit_prices WHERE region = $1`, region).Scan(&newest); err != nil {
			return err
		}
		if newest != version {
			return errStale
		}
		u, d, c := l.Utilization, l.Demand, l.Capacity
		_, err := tx.Exec(ctx, `INSERT INTO unit_prices (region, cpu_core_hour, memory_gib_hour, disk_gib_hour, set_by, by_market,
			util_cpu_bp, util_memory_bp, util_disk_bp, demand_cpu_mhz, demand_memory_mb, demand_disk_mb, capacity_cpu_mhz, capacity_memory_mb, capacity_disk_mb)
			VALUES ($1, $2, $3, $4, $5, true, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			region, int64(p.CPU), int64(p.Memory), int64(p.Disk), market.SetByMarket,
			u.CPU, u.Memory, u.Disk, d.CPUMHz, d.MemoryMB, d.DiskMB, c.CPUMHz, c.MemoryMB, c.DiskMB)
		return err
	})
	s.prices.Clear()
	if errors.Is(err, errStale) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("postgres: record market prices of region %q: %w", region, err)
	}
	return true, nil
}

// PricedRegions lists every region with a price history, "" included
// when the hub-wide prices have one.
func (s *Store) PricedRegions(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT region FROM unit_prices ORDER BY region`)
	if err != nil {
		return nil, fmt.Errorf("postgres: priced regions: %w", err)
	}
	rs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: priced regions: %w", err)
	}
	return rs, nil
}

// PriceHistory returns up to limit changes of the hub-wide prices, newest
// first.
func (s *Store) PriceHistory(ctx context.Context, limit int) ([]market.PriceChange, error) {
	return s.PriceHistoryIn(ctx, "", limit)
}

// PriceHistoryIn returns up to limit price changes of region, or of every
// region for market.AllRegions, newest first.
func (s *Store) PriceHistoryIn(ctx context.Context, region string, limit int) ([]market.PriceChange, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT region, cpu_core_hour, memory_gib_hour, disk_gib_hour, set_by, set_at, by_market,
			coalesce(util_cpu_bp, 0), coalesce(util_memory_bp, 0), coalesce(util_disk_bp, 0),
			coalesce(demand_cpu_mhz, 0), coalesce(demand_memory_mb, 0), coalesce(demand_disk_mb, 0),
			coalesce(capacity_cpu_mhz, 0), coalesce(capacity_memory_mb, 0), coalesce(capacity_disk_mb, 0)
		FROM unit_prices WHERE $1 = $2 OR region = $1 ORDER BY id DESC LIMIT $3`, region, market.AllRegions, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: price history: %w", err)
	}
	defer rows.Close()
	var out []market.PriceChange
	for rows.Next() {
		var c market.PriceChange
		var cpu, mem, disk int64
		var byMarket bool
		var l market.Load
		u, d, cp := &l.Utilization, &l.Demand, &l.Capacity
		if err := rows.Scan(&c.Region, &cpu, &mem, &disk, &c.SetBy, &c.SetAt, &byMarket, &u.CPU, &u.Memory, &u.Disk,
			&d.CPUMHz, &d.MemoryMB, &d.DiskMB, &cp.CPUMHz, &cp.MemoryMB, &cp.DiskMB); err != nil {
			return nil, fmt.Errorf("postgres: price history: %w", err)
		}
		c.CPU, c.Memory, c.Disk = ledger.Amount(cpu), ledger.Amount(mem), ledger.Amount(disk)
		if byMarket {
			c.Load = &l
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: price history: %w", err)
	}
	return out, nil
}
