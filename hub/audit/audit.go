// Package audit verifies a hub's ledger from its public transparency log
// alone, as any third party can: it checks the signed checkpoint
// (c2sp.org/tlog-checkpoint, c2sp.org/signed-note), its consistency with a
// checkpoint trusted earlier, authenticates every entry bundle and hash tile
// (c2sp.org/tlog-tiles) against the checkpoint's root with a third-party
// client (filippo.io/torchwood), and replays every entry through the
// ledger's rules: no duplicate IDs, no overdraft, holds resolved at most
// once, timestamps increasing. With database access it also checks that the
// database's balances are exactly the replayed ones.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"filippo.io/torchwood"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/translog"
	"golang.org/x/mod/sumdb/tlog"
)

// Database is the hub's store, for the optional database check.
type Database interface {
	LogSize(ctx context.Context) (int64, error)
	ReadEntries(ctx context.Context, start, end int64) ([][]byte, error)
	Accounts(ctx context.Context) ([]ledger.Account, error)
}

// Config says what to verify.
type Config struct {
	LogURL  string // base URL of the log, e.g. http://hub:7070/log/
	Key     string // the hub's log verifier key (name+hash+base64)
	Trusted []byte // optional: a signed checkpoint verified before; the new one must be consistent with it
	DB      Database
	HTTP    *http.Client
}

// AccountBalance is one account's replayed balances.
type AccountBalance struct {
	ID      ledger.ID          `json:"id"`
	Owner   string             `json:"owner"`
	Kind    ledger.AccountKind `json:"kind"`
	Balance ledger.Amount      `json:"balance"`
	Pending ledger.Amount      `json:"debits_pending"`
}

// Report is what the auditor found. Verify returns an error for any failure;
// a Report is returned only for a log that passed every check.
type Report struct {
	Origin      string           `json:"origin"`
	TreeSize    int64            `json:"tree_size"`
	RootHash    string           `json:"root_hash"`
	Checkpoint  string           `json:"checkpoint"`
	Accounts    int              `json:"accounts"`
	Transfers   int              `json:"transfers"`
	TotalIssued ledger.Amount    `json:"total_issued"`
	Balances    []AccountBalance `json:"balances"`
	// DBChecked is set when the database's balances were compared; DBTail
	// is how many entries the database holds beyond the checkpoint (they
	// are replayed too, but are not yet covered by a signature).
	DBChecked bool  `json:"db_checked"`
	DBTail    int64 `json:"db_tail,omitempty"`
}

// Verify runs the audit.
func Verify(ctx context.Context, cfg Config) (*Report, error) {
	base := strings.TrimSuffix(cfg.LogURL, "/") + "/"
	opts := []torchwood.TileFetcherOption{torchwood.WithUserAgent("spiceroute-audit")}
	if cfg.HTTP != nil {
		opts = append(opts, torchwood.WithHTTPClient(cfg.HTTP))
	}
	fetcher, err := torchwood.NewTileFetcher(base, opts...)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	signed, err := fetcher.ReadEndpoint(ctx, "checkpoint")
	if err != nil {
		return nil, fmt.Errorf("audit: fetch checkpoint: %w", err)
	}
	cp, err := translog.VerifyCheckpoint(signed, cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoint: %w", err)
	}
	rep := &Report{Origin: cp.Origin, TreeSize: cp.N, RootHash: cp.Hash.String(), Checkpoint: string(signed)}

	if len(cfg.Trusted) > 0 {
		old, err := translog.VerifyCheckpoint(cfg.Trusted, cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("audit: trusted checkpoint: %w", err)
		}
		if old.N > cp.N {
			return nil, fmt.Errorf("audit: the log shrank from %d to %d entries since the trusted checkpoint", old.N, cp.N)
		}
		hr := torchwood.TileHashReaderWithContext(ctx, cp.Tree, fetcher)
		proof, err := tlog.ProveTree(cp.N, old.N, hr)
		if err != nil {
			return nil, fmt.Errorf("audit: consistency proof %d -> %d: %w", old.N, cp.N, err)
		}
		// RFC 6962 §2.1.2: the old tree is a prefix of the new one.
		if err := tlog.CheckTree(proof, cp.N, cp.Hash, old.N, old.Hash); err != nil {
			return nil, fmt.Errorf("audit: the log is not consistent with the trusted checkpoint of size %d: history was rewritten: %w", old.N, err)
		}
	}

	client, err := torchwood.NewClient(fetcher, torchwood.WithTimeout(10*time.Minute))
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	replay := ledger.NewReplay()
	for i, leaf := range client.AllEntries(ctx, cp.Tree, 0) {
		if err := apply(replay, i, leaf); err != nil {
			return nil, err
		}
	}
	if err := client.Err(); err != nil {
		return nil, fmt.Errorf("audit: read log: %w", err)
	}
	if replay.Size() != cp.N {
		return nil, fmt.Errorf("audit: read %d entries, checkpoint says %d", replay.Size(), cp.N)
	}

	if cfg.DB != nil {
		if err := checkDB(ctx, cfg.DB, replay, rep); err != nil {
			return nil, err
		}
	}
	summarize(replay, rep)
	return rep, nil
}

func apply(r *ledger.Replay, i int64, leaf []byte) error {
	if i != r.Size() {
		return fmt.Errorf("audit: entry %d out of order (want %d)", i, r.Size())
	}
	e, err := ledger.DecodeEntry(leaf)
	if err != nil {
		return fmt.Errorf("audit: entry %d: %w", i, err)
	}
	if err := r.Apply(e); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// checkDB replays the database's entries beyond the checkpoint and compares
// every account's stored balances with the replay.
//
// A live hub keeps committing while it is audited. A commit writes its
// leaves and balances atomically and the log only grows, so balances read
// between two equal readings of the log size belong to exactly that log:
// read size, replay up to it, read balances, read size again, and retry
// with the longer log if it grew.
func checkDB(ctx context.Context, db Database, r *ledger.Replay, rep *Report) error {
	const attempts = 20
	for range attempts {
		size, err := db.LogSize(ctx)
		if err != nil {
			return fmt.Errorf("audit: database: %w", err)
		}
		if size < r.Size() {
			return fmt.Errorf("audit: the database has %d log entries, fewer than the %d already verified", size, r.Size())
		}
		if err := replayDB(ctx, db, r, size); err != nil {
			return err
		}
		stored, err := db.Accounts(ctx)
		if err != nil {
			return fmt.Errorf("audit: database: %w", err)
		}
		after, err := db.LogSize(ctx)
		if err != nil {
			return fmt.Errorf("audit: database: %w", err)
		}
		if after != size {
			continue // a commit landed meanwhile: balances may be newer than the replay
		}
		rep.DBTail = size - rep.TreeSize
		if err := compareBalances(stored, r.Accounts()); err != nil {
			return err
		}
		rep.DBChecked = true
		return nil
	}
	return fmt.Errorf("audit: the database kept changing during %d attempts to read a consistent state", attempts)
}

// replayDB replays the database's leaves from r's size up to size.
func replayDB(ctx context.Context, db Database, r *ledger.Replay, size int64) error {
	for start := r.Size(); start < size; start += 4096 {
		end := min(start+4096, size)
		leaves, err := db.ReadEntries(ctx, start, end)
		if err != nil {
			return fmt.Errorf("audit: database: %w", err)
		}
		for k, leaf := range leaves {
			if err := apply(r, start+int64(k), leaf); err != nil {
				return err
			}
		}
	}
	return nil
}

func compareBalances(stored []ledger.Account, replayed map[ledger.ID]ledger.Account) error {
	if len(stored) != len(replayed) {
		return fmt.Errorf("audit: the database has %d accounts, the log %d", len(stored), len(replayed))
	}
	for _, s := range stored {
		a, ok := replayed[s.ID]
		if !ok {
			return fmt.Errorf("audit: account %s is in the database but not in the log", s.ID)
		}
		if a.DebitsPending != s.DebitsPending || a.DebitsPosted != s.DebitsPosted || a.CreditsPending != s.CreditsPending || a.CreditsPosted != s.CreditsPosted {
			return fmt.Errorf("audit: account %s (%s): database balance %s (pending %s), log replay %s (pending %s)",
				s.ID, s.Owner, s.Balance(), s.DebitsPending, a.Balance(), a.DebitsPending)
		}
	}
	return nil
}

func summarize(r *ledger.Replay, rep *Report) {
	accounts := r.Accounts()
	rep.Accounts = len(accounts)
	rep.Transfers = int(r.Size()) - len(accounts)
	var sum ledger.Amount
	for _, a := range accounts {
		sum += a.Balance()
		if a.Kind == ledger.KindIssuance {
			rep.TotalIssued -= a.Balance()
		}
		rep.Balances = append(rep.Balances, AccountBalance{ID: a.ID, Owner: a.Owner, Kind: a.Kind, Balance: a.Balance(), Pending: a.DebitsPending})
	}
	sort.Slice(rep.Balances, func(i, j int) bool {
		if rep.Balances[i].Owner != rep.Balances[j].Owner {
			return rep.Balances[i].Owner < rep.Balances[j].Owner
		}
		return rep.Balances[i].ID.String() < rep.Balances[j].ID.String()
	})
	if sum != 0 {
		// Replay enforces double entry transfer by transfer, so this cannot
		// happen unless the replay itself is wrong.
		panic(fmt.Sprintf("audit: balances sum to %s after replay", sum))
	}
}

// FetchKey asks the hub for its log key (GET /api/hub): for convenience
// only, since a key learned from the hub being audited proves nothing
// against that hub.
func FetchKey(ctx context.Context, hubURL string, hc *http.Client) (string, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimSuffix(hubURL, "/")+"/api/hub", nil)
	if err != nil {
		return "", fmt.Errorf("audit: fetch key: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("audit: fetch key: %w", err)
	}
	defer resp.Body.Close()
	var info struct {
		Key string `json:"log_public_key"`
	}
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("audit: fetch key: status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&info); err != nil || info.Key == "" {
		return "", fmt.Errorf("audit: fetch key: no log_public_key in /api/hub")
	}
	return info.Key, nil
}
