package bench

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/spiceroute/spiceroute/hub"
	"github.com/spiceroute/spiceroute/hub/postgres/pgcluster"
	"io"
	"log/slog"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startHub runs a hub on a new database db of cl, with its key in tmp and
// no rate limits in the way of the benchmark; configure adjusts its
// config. stop ends it and releases what it holds.
func startHub(ctx context.Context, cl *pgcluster.Cluster, db, tmp string, configure func(*hub.Config)) (s *hub.Server, stop func(), err error) {
	if err := cl.CreateDatabase(ctx, db, ""); err != nil {
		return nil, nil, err
	}
	hc := hub.DefaultConfig()
	hc.Name, hc.Listen, hc.DatabaseURL = strings.ReplaceAll(db, "_", "-")+".spiceroute.local", "127.0.0.1:0", cl.URL(db)
	hc.KeyFile = filepath.Join(tmp, db+"-hub.key")
	hc.Logger = quietLogger()
	hc.API.RatePerToken, hc.API.Burst = 1e6, 1e6
	configure(&hc)
	if s, err = hub.Open(ctx, hc); err != nil {
		return nil, nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.Run(runCtx); close(done) }()
	return s, func() { cancel(); <-done; s.Close() }, nil
}
