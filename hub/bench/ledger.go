// Package bench measures the hub against baselines run side by side on the
// same machine in the same run (`spice bench ...`, `make bench`). It prints
// ratios; it never asserts a wall-clock time.
package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/postgres"
	"github.com/spiceroute/spiceroute/hub/postgres/pgcluster"
	"golang.org/x/mod/sumdb/tlog"
)

// LedgerConfig configures the ledger throughput benchmark.
type LedgerConfig struct {
	Clients    int           // concurrent clients, for the ledger and for pgbench (default 32)
	Duration   time.Duration // per measurement (default 10s)
	BatchSizes []int         // transfers per request (default 1, 100, 8190)
	Accounts   int           // accounts transfers move between (default 10,000)
}

func (c *LedgerConfig) defaults() {
	if c.Clients <= 0 {
		c.Clients = 32
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if len(c.BatchSizes) == 0 {
		c.BatchSizes = []int{1, 100, ledger.MaxBatch}
	}
	if c.Accounts <= 1 {
		c.Accounts = 10_000
	}
}

// LedgerResult is what the benchmark measured.
type LedgerResult struct {
	TransfersPerSec map[int]float64 // by batch size
	Commits         map[int]int64   // group commits by batch size
	PGBenchTPS      float64         // at scale = clients
}

// Ledger measures durable transfers per second through the ledger writer
// (in process, fsync on, one fresh database per batch size) and pgbench's
// default TPC-B-like transactions per second with the same client count on
// the same cluster, and prints both with their ratio.
func Ledger(ctx context.Context, cl *pgcluster.Cluster, cfg LedgerConfig, out io.Writer) (*LedgerResult, error) {
	cfg.defaults()
	res := &LedgerResult{TransfersPerSec: map[int]float64{}, Commits: map[int]int64{}}
	fmt.Fprintf(out, "ledger: durable transfers/s, fsync on, %d clients, %s per batch size, %d accounts\n", cfg.Clients, cfg.Duration, cfg.Accounts)
	for i, size := range cfg.BatchSizes {
		db := fmt.Sprintf("bench_ledger_%d_%d", size, i)
		if err := cl.CreateDatabase(ctx, db, ""); err != nil {
			return nil, err
		}
		tps, commits, err := ledgerRun(ctx, cl.URL(db), size, cfg)
		if err != nil {
			return nil, fmt.Errorf("bench: batch %d: %w", size, err)
		}
		res.TransfersPerSec[size], res.Commits[size] = tps, commits
		fmt.Fprintf(out, "  batch %5d: %10.0f transfers/s  (%d group commits, %.0f transfers each)\n", size, tps, commits, tps*cfg.Duration.Seconds()/float64(max(commits, 1)))
		_ = cl.DropDatabase(ctx, db)
	}
	// pgbench's built-in TPC-B-like script, same clients, same cluster.
	// At its default scale (1) every client updates the one branches row,
	// so it is also measured at scale = clients, the stronger baseline the
	// target is judged against.
	for _, scale := range []int{1, cfg.Clients} {
		db := fmt.Sprintf("bench_pgbench_%d", scale)
		if err := cl.CreateDatabase(ctx, db, ""); err != nil {
			return nil, err
		}
		tps, _, err := cl.PGBench(ctx, db, scale, cfg.Clients, 2, cfg.Duration)
		if err != nil {
			return nil, err
		}
		_ = cl.DropDatabase(ctx, db)
		fmt.Fprintf(out, "pgbench: TPC-B-like (built-in script), fsync on, %d clients, scale %d, %s: %.0f TPS\n", cfg.Clients, scale, cfg.Duration, tps)
		res.PGBenchTPS = tps
	}
	tps := res.PGBenchTPS
	for _, size := range cfg.BatchSizes {
		fmt.Fprintf(out, "  ratio batch %5d / pgbench (scale %d): %7.1fx\n", size, cfg.Clients, res.TransfersPerSec[size]/tps)
	}
	big := cfg.BatchSizes[len(cfg.BatchSizes)-1]
	fmt.Fprintf(out, "target: batched throughput >= 100x pgbench: %s (%.1fx)\n", verdict(res.TransfersPerSec[big]/tps >= 100), res.TransfersPerSec[big]/tps)
	return res, nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// ledgerRun measures one batch size on a fresh database.
func ledgerRun(ctx context.Context, url string, batch int, cfg LedgerConfig) (float64, int64, error) {
	store, err := postgres.Open(ctx, url)
	if err != nil {
		return 0, 0, err
	}
	defer store.Close()
	var commits atomic.Int64
	l, err := ledger.Open(ctx, store, ledger.Config{OnCommit: func(tlog.Tree) { commits.Add(1) }, Logger: quietLogger()})
	if err != nil {
		return 0, 0, err
	}
	defer l.Close()
	ids, err := fundAccounts(ctx, l, cfg.Accounts)
	if err != nil {
		return 0, 0, err
	}
	commits.Store(0)
	var done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	deadline := time.Now().Add(cfg.Duration)
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < cfg.Clients; c++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 42))
			ts := make([]ledger.Transfer, batch)
			for time.Now().Before(deadline) {
				for i := range ts {
					d := rng.IntN(len(ids))
					cr := (d + 1 + rng.IntN(len(ids)-1)) % len(ids)
					ts[i] = ledger.Transfer{ID: ledger.NewID(), DebitAccountID: ids[d], CreditAccountID: ids[cr], Amount: ledger.Amount(1 + rng.IntN(1000))}
				}
				res, err := l.CreateTransfers(ctx, ledger.System, ts)
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				n := 0
				for _, r := range res {
					if r.Err == nil {
						n++
					}
				}
				done.Add(int64(n))
			}
		}(uint64(c))
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return 0, 0, firstErr
	}
	return float64(done.Load()) / elapsed.Seconds(), commits.Load(), nil
}

// fundAccounts creates n renter accounts with 1,000,000 SP each.
func fundAccounts(ctx context.Context, l *ledger.Ledger, n int) ([]ledger.ID, error) {
	issuance := ledger.NewID()
	if _, err := createAccounts(ctx, l, []ledger.Account{{ID: issuance, Owner: "hub", Kind: ledger.KindIssuance, Flags: ledger.AccountAllowNegative}}); err != nil {
		return nil, err
	}
	ids := make([]ledger.ID, n)
	for start := 0; start < n; start += ledger.MaxBatch {
		end := min(start+ledger.MaxBatch, n)
		accts := make([]ledger.Account, 0, end-start)
		ts := make([]ledger.Transfer, 0, end-start)
		for i := start; i < end; i++ {
			ids[i] = ledger.NewID()
			accts = append(accts, ledger.Account{ID: ids[i], Owner: fmt.Sprintf("bench-%d", i), Kind: ledger.KindRenter})
			ts = append(ts, ledger.Transfer{ID: ledger.NewID(), DebitAccountID: issuance, CreditAccountID: ids[i], Amount: 1_000_000 * ledger.MicroPerSpice})
		}
		if _, err := createAccounts(ctx, l, accts); err != nil {
			return nil, err
		}
		res, err := l.CreateTransfers(ctx, ledger.System, ts)
		if err != nil {
			return nil, err
		}
		for _, r := range res {
			if r.Err != nil {
				return nil, r.Err
			}
		}
	}
	return ids, nil
}

func createAccounts(ctx context.Context, l *ledger.Ledger, accts []ledger.Account) ([]ledger.AccountResult, error) {
	res, err := l.CreateAccounts(ctx, ledger.System, accts)
	if err != nil {
		return nil, err
	}
	for _, r := range res {
		if r.Err != nil {
			return nil, r.Err
		}
	}
	return res, nil
}
