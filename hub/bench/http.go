package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiceroute/spiceroute/hub"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/postgres/pgcluster"
)

// HTTPConfig configures the HTTP latency benchmark.
type HTTPConfig struct {
	Rate     int           // transfers offered per second (default 2000)
	Clients  int           // concurrent HTTP clients (default 64)
	Duration time.Duration // default 10s
	Accounts int           // default 1000
	TempDir  string        // for the hub's key
}

// HTTPResult is what the HTTP benchmark measured.
type HTTPResult struct {
	Sent, OK, Failed int
	P50, P99, Max    time.Duration
	AchievedRate     float64
}

// HTTP measures the latency of single transfers (POST /api/transfers)
// through a real hub on cl, offered open-loop at a fixed rate by a pool of
// clients. Latency is measured from each request's scheduled send time, so
// time spent waiting for a free client counts (no coordinated omission).
func HTTP(ctx context.Context, cl *pgcluster.Cluster, cfg HTTPConfig, out io.Writer) (*HTTPResult, error) {
	if cfg.Rate <= 0 {
		cfg.Rate = 2000
	}
	if cfg.Clients <= 0 {
		cfg.Clients = 64
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.Accounts <= 1 {
		cfg.Accounts = 1000
	}
	s, stop, err := startHub(ctx, cl, "bench_http", cfg.TempDir, func(*hub.Config) {})
	if err != nil {
		return nil, err
	}
	defer stop()
	token, err := s.Store.CreateToken(ctx, auth.Principal{Name: "bench", Role: auth.RoleOperator}, "bench")
	if err != nil {
		return nil, err
	}
	ids, err := fundAccounts(ctx, s.Ledger, cfg.Accounts)
	if err != nil {
		return nil, err
	}

	url := s.URL() + "/api/transfers"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Clients, MaxConnsPerHost: cfg.Clients}, Timeout: 30 * time.Second}
	total := int(float64(cfg.Rate) * cfg.Duration.Seconds())
	jobs := make(chan time.Time, total)
	lat := make([]time.Duration, 0, total)
	var mu sync.Mutex
	var okN, failN atomic.Int64
	var wg sync.WaitGroup
	for c := 0; c < cfg.Clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			i := c
			for due := range jobs {
				i += cfg.Clients
				t := ledger.Transfer{ID: ledger.NewID(), DebitAccountID: ids[i%len(ids)], CreditAccountID: ids[(i+1)%len(ids)], Amount: ledger.Amount(1 + i%100)}
				body, _ := json.Marshal(t)
				req, _ := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				d := time.Since(due)
				if err != nil {
					failN.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 201 || resp.StatusCode == 200 {
					okN.Add(1)
				} else {
					failN.Add(1)
				}
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}(c)
	}
	start := time.Now()
	interval := time.Second / time.Duration(cfg.Rate)
	for i := 0; i < total; i++ {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		jobs <- due
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	res := &HTTPResult{Sent: total, OK: int(okN.Load()), Failed: int(failN.Load()), AchievedRate: float64(okN.Load()) / elapsed.Seconds()}
	if len(lat) > 0 {
		res.P50, res.P99, res.Max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	}
	fmt.Fprintf(out, "http: POST /api/transfers, one transfer each, %d/s offered by %d clients for %s\n", cfg.Rate, cfg.Clients, cfg.Duration)
	fmt.Fprintf(out, "  %d sent, %d ok, %d failed, %.0f ok/s; latency p50 %s, p99 %s, max %s\n",
		res.Sent, res.OK, res.Failed, res.AchievedRate, res.P50.Round(10*time.Microsecond), res.P99.Round(10*time.Microsecond), res.Max.Round(time.Millisecond))
	return res, nil
}
