package postgres

import (
	"context"
	"fmt"

	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
)

// Prices returns the unit prices in force: the newest set, or
// market.DefaultPrices if none was ever set.
func (s *Store) Prices(ctx context.Context) (market.Prices, error) {
	h, err := s.PriceHistory(ctx, 1)
	if err != nil {
		return market.Prices{}, err
	}
	if len(h) == 0 {
		return market.DefaultPrices, nil
	}
	return h[0].Prices, nil
}

// SetPrices puts new unit prices in force and records who set them.
func (s *Store) SetPrices(ctx context.Context, p market.Prices, by string) error {
	if err := p.Validate(); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO unit_prices (cpu_core_hour, memory_gib_hour, disk_gib_hour, set_by) VALUES ($1, $2, $3, $4)`,
		int64(p.CPU), int64(p.Memory), int64(p.Disk), by)
	if err != nil {
		return fmt.Errorf("postgres: set prices: %w", err)
	}
	return nil
}

// PriceHistory returns up to limit price changes, newest first.
func (s *Store) PriceHistory(ctx context.Context, limit int) ([]market.PriceChange, error) {
	rows, err := s.pool.Query(ctx, `SELECT cpu_core_hour, memory_gib_hour, disk_gib_hour, set_by, set_at FROM unit_prices ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: price history: %w", err)
	}
	defer rows.Close()
	var out []market.PriceChange
	for rows.Next() {
		var c market.PriceChange
		var cpu, mem, disk int64
		if err := rows.Scan(&cpu, &mem, &disk, &c.SetBy, &c.SetAt); err != nil {
			return nil, fmt.Errorf("postgres: price history: %w", err)
		}
		c.CPU, c.Memory, c.Disk = ledger.Amount(cpu), ledger.Amount(mem), ledger.Amount(disk)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: price history: %w", err)
	}
	return out, nil
}
