package pgcluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// PGBench initialises database db (which must exist) with `pgbench -i -s
// scale`, replacing any pgbench tables in it, then runs pgbench's built-in
// TPC-B-like script with clients clients and threads worker threads (-j) for
// dur (rounded up to whole seconds). It returns the transactions per second
// pgbench reports excluding the time to open connections, and the run's
// output.
//
// pgbench comes from BinDir, else from PATH.
func (c *Cluster) PGBench(ctx context.Context, db string, scale, clients, threads int, dur time.Duration) (tps float64, output string, err error) {
	bin := filepath.Join(c.binDir, "pgbench")
	if !isExecutable(bin) {
		if bin, err = exec.LookPath("pgbench"); err != nil {
			return 0, "", fmt.Errorf("pgcluster: pgbench not in %s nor on PATH (Debian: apt-get install postgresql-client-15): %w", c.binDir, err)
		}
	}
	conn := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(c.port), "-U", Superuser}

	initArgs := append([]string{"-i", "-q", "-s", strconv.Itoa(scale)}, conn...)
	out, err := c.command(ctx, bin, append(initArgs, db)...).CombinedOutput()
	if err != nil {
		return 0, string(out), fmt.Errorf("pgcluster: pgbench -i: %w: %s", err, bytes.TrimSpace(out))
	}

	secs := max(1, int(math.Ceil(dur.Seconds())))
	runArgs := append([]string{"-c", strconv.Itoa(clients), "-j", strconv.Itoa(threads), "-T", strconv.Itoa(secs)}, conn...)
	out, err = c.command(ctx, bin, append(runArgs, db)...).CombinedOutput()
	output = string(out)
	if err != nil {
		return 0, output, fmt.Errorf("pgcluster: pgbench: %w: %s", err, bytes.TrimSpace(out))
	}
	tps, err = parseTPS(output)
	if err != nil {
		return 0, output, err
	}
	return tps, output, nil
}

// parseTPS returns the throughput pgbench reports excluding connection time:
//
//	tps = 1234.567890 (without initial connection time)      PostgreSQL 14+
//	tps = 1234.567890 (excluding connections establishing)   PostgreSQL ≤ 13
func parseTPS(output string) (float64, error) {
	sc := bufio.NewScanner(strings.NewReader(output))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "tps = ")
		if !ok {
			continue
		}
		num, note, _ := strings.Cut(rest, " ")
		if note != "(without initial connection time)" && note != "(excluding connections establishing)" {
			continue
		}
		tps, err := strconv.ParseFloat(num, 64)
		if err != nil || math.IsNaN(tps) || math.IsInf(tps, 0) || tps < 0 {
			return 0, fmt.Errorf("pgcluster: pgbench output: bad tps %q", num)
		}
		return tps, nil
	}
	return 0, errors.New("pgcluster: pgbench output: no \"tps = ... (without initial connection time)\" line")
}
