// Package postgres is the hub's PostgreSQL store (pgx): the ledger's durable
// state, the transparency log's leaves, hashes and checkpoints, API tokens,
// and the read side of the API. Schema migrations are embedded (migrate.go).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/translog"
	"golang.org/x/mod/sumdb/tlog"
)

// Store is the hub's PostgreSQL store. Safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool

	// async is a second pool whose sessions commit without waiting for the
	// disk (synchronous_commit off), for writes that need not be durable
	// at once; created on first use.
	asyncOnce sync.Once
	async     *pgxpool.Pool
	asyncErr  error

	// principals caches Authenticate's answers by token hash for
	// TokenCacheTTL: every API request authenticates, and most come from
	// the same few tokens.
	principals sync.Map // [32]byte → cachedPrincipal
	// prices caches PricesIn by region (cleared by every price write).
	prices sync.Map // string → cachedPrices
	// usage caches RenterUsage by renter (UsageCacheTTL).
	usage sync.Map // string → *renterUsage
}

// TokenCacheTTL is how long Authenticate trusts an answer it read. A token
// revoked through this store stops working at once; revoked through
// another hub replica sharing the database, within TokenCacheTTL.
const TokenCacheTTL = 2 * time.Second

type cachedPrincipal struct {
	p       auth.Principal
	expires time.Time
}

// Open connects to the database at url and applies migrations.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse url: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	err = Migrate(ctx, conn.Conn())
	conn.Release()
	if err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool}, nil
}

// New wraps an open pool whose database is already migrated.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Close closes the pools. Safe to call twice.
func (s *Store) Close() {
	s.asyncOnce.Do(func() { s.asyncErr = errors.New("postgres: store closed") })
	if s.async != nil {
		s.async.Close()
	}
	s.pool.Close()
}

// asyncPool returns the pool whose transactions commit without waiting for
// the disk: durable a moment later, at the next WAL flush (any other
// transaction's synchronous commit flushes them too).
func (s *Store) asyncPool(ctx context.Context) (*pgxpool.Pool, error) {
	s.asyncOnce.Do(func() {
		cfg := s.pool.Config()
		params := map[string]string{}
		for k, v := range cfg.ConnConfig.RuntimeParams {
			params[k] = v
		}
		params["synchronous_commit"] = "off"
		cfg.ConnConfig.RuntimeParams = params
		s.async, s.asyncErr = pgxpool.NewWithConfig(context.WithoutCancel(ctx), cfg)
	})
	if s.asyncErr != nil {
		return nil, fmt.Errorf("postgres: %w", s.asyncErr)
	}
	return s.async, nil
}

// Pool exposes the pool for tests and tools that check the books.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

var (
	_ ledger.Store     = (*Store)(nil)
	_ translog.Storage = (*Store)(nil)
)

// Commit writes one ledger group commit in one transaction: COPY the new
// accounts and transfers, update the changed balances, and append the log
// batch. One fsync per batch is what makes group commit fast.
func (s *Store) Commit(ctx context.Context, c *ledger.Commit) error {
	// The leaves themselves are the rows the commit writes (see leaves).
	if n := len(c.Log.Entries); n > 0 && n != len(c.Accounts)+len(c.Transfers) {
		return fmt.Errorf("postgres: commit log: %d leaves for %d accounts and %d transfers", n, len(c.Accounts), len(c.Transfers))
	}
	if len(c.Accounts) == 0 && len(c.Transfers) <= pipelineMax {
		return s.commitPipelined(ctx, c)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	defer tx.Rollback(ctx)
	if len(c.Accounts) > 0 {
		if err := copyAccounts(ctx, tx.Conn(), c.Accounts); err != nil {
			return fmt.Errorf("postgres: commit accounts: %w", err)
		}
	}
	if len(c.Transfers) > 0 {
		if err := copyTransfers(ctx, tx.Conn(), c.Transfers); err != nil {
			return fmt.Errorf("postgres: commit transfers: %w", err)
		}
	}
	if n := len(c.Balances); n > 0 {
		tag, err := tx.Exec(ctx, updateBalances, balanceArgs(c.Balances)...)
		if err != nil {
			return fmt.Errorf("postgres: commit balances: %w", err)
		}
		if tag.RowsAffected() != int64(n) {
			return fmt.Errorf("postgres: commit balances: updated %d of %d accounts", tag.RowsAffected(), n)
		}
	}
	if len(c.Log.Entries) > 0 {
		if _, err := tx.Exec(ctx, insertLogBatch, logBatchArgs(c.Log)...); err != nil {
			return fmt.Errorf("postgres: commit log: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	return nil
}

// updateBalances sets the balances of the accounts in balanceArgs.
const updateBalances = `UPDATE accounts a SET debits_pending = u.dp, debits_posted = u.dpo, credits_pending = u.cp, credits_posted = u.cpo
	FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) AS u(id, dp, dpo, cp, cpo) WHERE a.id = u.id`

// balanceArgs are updateBalances' arguments for accounts as.
func balanceArgs(as []ledger.Account) []any {
	n := len(as)
	ids := make([][16]byte, n)
	dp, dpo, cp, cpo := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	for i, a := range as {
		ids[i] = a.ID
		dp[i], dpo[i], cp[i], cpo[i] = int64(a.DebitsPending), int64(a.DebitsPosted), int64(a.CreditsPending), int64(a.CreditsPosted)
	}
	return []any{ids, dp, dpo, cp, cpo}
}

const insertLogBatch = `INSERT INTO log_batches (first_index, count, first_hash_index, hashes) VALUES ($1, $2, $3, $4)`

// logBatchArgs are insertLogBatch's arguments for a commit's log batch.
func logBatchArgs(b translog.Batch) []any {
	hashes := make([]byte, 0, 32*len(b.Hashes))
	for _, h := range b.Hashes {
		hashes = append(hashes, h[:]...)
	}
	return []any{b.FirstIndex, len(b.Entries), b.FirstHashIndex, hashes}
}

// ScanLog streams every log leaf in order.
func (s *Store) ScanLog(ctx context.Context, fn func(index int64, leaf []byte) error) error {
	size, err := logSize(ctx, s.pool)
	if err != nil {
		return err
	}
	return leaves(ctx, s.pool, 0, size, fn)
}

// Load streams every log leaf in order and returns every account with its
// stored balances, both read from one snapshot (a read-only
// repeatable-read transaction). A commit that lands meanwhile is in
// neither: a hub restarted at once after a crash can meet its previous
// process's last commit, sent before the crash and still being executed.
// Read apart, the log would end before that commit and the balances
// include it. Read together, the ledger starts from the state before it,
// and its first commit then fails on the log index that commit took and
// reloads.
func (s *Store) Load(ctx context.Context, fn func(index int64, leaf []byte) error) ([]ledger.Account, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("postgres: load: %w", err)
	}
	defer tx.Rollback(ctx)
	size, err := logSize(ctx, tx)
	if err != nil {
		return nil, err
	}
	if err := leaves(ctx, tx, 0, size, fn); err != nil {
		return nil, err
	}
	return queryAccounts(ctx, tx, `SELECT `+accountCols+` FROM accounts ORDER BY log_index`)
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// leaves calls fn for every leaf in [start, end), in order. Leaf i is the
// canonical entry encoding of the account or transfer row with log_index i.
func leaves(ctx context.Context, q querier, start, end int64, fn func(index int64, leaf []byte) error) error {
	accts, err := queryAccounts(ctx, q, `SELECT `+accountCols+` FROM accounts WHERE log_index >= $1 AND log_index < $2 ORDER BY log_index`, start, end)
	if err != nil {
		return fmt.Errorf("postgres: leaves: %w", err)
	}
	rows, err := q.Query(ctx, `SELECT `+transferCols+` FROM transfers WHERE log_index >= $1 AND log_index < $2 ORDER BY log_index`, start, end)
	if err != nil {
		return fmt.Errorf("postgres: leaves: %w", err)
	}
	defer rows.Close()
	next, ai := start, 0
	var buf []byte
	emitAccounts := func(before int64) error {
		for ; ai < len(accts) && accts[ai].LogIndex < before; ai++ {
			if accts[ai].LogIndex != next {
				return fmt.Errorf("postgres: leaves: leaf %d missing", next)
			}
			buf = ledger.AppendAccountEntry(buf[:0], &accts[ai])
			if err := fn(next, buf); err != nil {
				return err
			}
			next++
		}
		return nil
	}
	for rows.Next() {
		t, err := scanTransfer(rows)
		if err != nil {
			return fmt.Errorf("postgres: leaves: %w", err)
		}
		if err := emitAccounts(t.LogIndex); err != nil {
			return err
		}
		if t.LogIndex != next {
			return fmt.Errorf("postgres: leaves: leaf %d missing", next)
		}
		buf = ledger.AppendTransferEntry(buf[:0], &t)
		if err := fn(next, buf); err != nil {
			return err
		}
		next++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: leaves: %w", err)
	}
	if err := emitAccounts(end); err != nil {
		return err
	}
	if next != end {
		return fmt.Errorf("postgres: leaves: [%d, %d) not all stored (stopped at %d)", start, end, next)
	}
	return nil
}

// LogSize is the number of leaves committed.
func (s *Store) LogSize(ctx context.Context) (int64, error) { return logSize(ctx, s.pool) }

func logSize(ctx context.Context, q querier) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, `SELECT coalesce(max(first_index + count), 0) FROM log_batches`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("postgres: log size: %w", err)
	}
	return n, nil
}

// ReadHashes returns stored hashes by stored-hash index.
func (s *Store) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	lo, hi := indexes[0], indexes[0]
	for _, x := range indexes {
		lo, hi = min(lo, x), max(hi, x)
	}
	rows, err := s.pool.Query(ctx, `SELECT first_hash_index, hashes FROM log_batches
		WHERE first_hash_index >= coalesce((SELECT max(first_hash_index) FROM log_batches WHERE first_hash_index <= $1), 0)
		  AND first_hash_index <= $2 ORDER BY first_hash_index`, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("postgres: read hashes: %w", err)
	}
	type span struct {
		first  int64
		hashes []byte
	}
	var spans []span
	for rows.Next() {
		var sp span
		if err := rows.Scan(&sp.first, &sp.hashes); err != nil {
			rows.Close()
			return nil, fmt.Errorf("postgres: read hashes: %w", err)
		}
		spans = append(spans, sp)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: read hashes: %w", err)
	}
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		found := false
		for _, sp := range spans {
			if off := x - sp.first; off >= 0 && off < int64(len(sp.hashes)/32) {
				copy(out[i][:], sp.hashes[off*32:])
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("postgres: read hashes: hash %d not stored", x)
		}
	}
	return out, nil
}

// ReadEntries returns the leaves [start, end).
func (s *Store) ReadEntries(ctx context.Context, start, end int64) ([][]byte, error) {
	if start < 0 || end < start {
		return nil, fmt.Errorf("postgres: read entries: bad range [%d, %d)", start, end)
	}
	out := make([][]byte, 0, end-start)
	err := leaves(ctx, s.pool, start, end, func(_ int64, leaf []byte) error {
		out = append(out, append([]byte(nil), leaf...))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LatestCheckpoint returns the newest signed checkpoint, or nil.
func (s *Store) LatestCheckpoint(ctx context.Context) ([]byte, error) {
	var note []byte
	err := s.pool.QueryRow(ctx, `SELECT note FROM log_checkpoints ORDER BY size DESC LIMIT 1`).Scan(&note)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: latest checkpoint: %w", err)
	}
	return note, nil
}

// SaveCheckpoint records a signed checkpoint. Saving the same size with the
// same root again is a no-op; the same size with another root is a fork and
// an error.
func (s *Store) SaveCheckpoint(ctx context.Context, size int64, root tlog.Hash, signed []byte) error {
	var stored []byte
	err := s.pool.QueryRow(ctx, `WITH ins AS (
			INSERT INTO log_checkpoints (size, root_hash, note) VALUES ($1, $2, $3) ON CONFLICT (size) DO NOTHING RETURNING root_hash)
		SELECT root_hash FROM ins UNION ALL SELECT root_hash FROM log_checkpoints WHERE size = $1 LIMIT 1`, size, root[:], signed).Scan(&stored)
	if err != nil {
		return fmt.Errorf("postgres: save checkpoint: %w", err)
	}
	if tlog.Hash(stored) != root {
		return fmt.Errorf("postgres: save checkpoint: a checkpoint of size %d with another root hash exists: the log forked", size)
	}
	return nil
}

const accountCols = `id, owner, kind, flags, code, user_data, debits_pending, debits_posted, credits_pending, credits_posted, ts, log_index`

func scanAccount(row pgx.Row) (ledger.Account, error) {
	var a ledger.Account
	var id [16]byte
	var kind int16
	var flags, code int32
	var dp, dpo, cp, cpo int64
	err := row.Scan(&id, &a.Owner, &kind, &flags, &code, &a.UserData, &dp, &dpo, &cp, &cpo, &a.Timestamp, &a.LogIndex)
	a.ID, a.Kind, a.Flags, a.Code = id, ledger.AccountKind(kind), ledger.AccountFlags(flags), uint16(code)
	a.DebitsPending, a.DebitsPosted, a.CreditsPending, a.CreditsPosted = ledger.Amount(dp), ledger.Amount(dpo), ledger.Amount(cp), ledger.Amount(cpo)
	return a, err
}

// Account returns one account with its committed balances.
func (s *Store) Account(ctx context.Context, id ledger.ID) (ledger.Account, error) {
	a, err := scanAccount(s.pool.QueryRow(ctx, `SELECT `+accountCols+` FROM accounts WHERE id = $1`, [16]byte(id)))
	if errors.Is(err, pgx.ErrNoRows) {
		return a, coded.Errorf("account_not_found", "account %s not found", id)
	}
	if err != nil {
		return a, fmt.Errorf("postgres: account %s: %w", id, err)
	}
	return a, nil
}

func (s *Store) queryAccounts(ctx context.Context, sql string, args ...any) ([]ledger.Account, error) {
	return queryAccounts(ctx, s.pool, sql, args...)
}

func queryAccounts(ctx context.Context, q querier, sql string, args ...any) ([]ledger.Account, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: accounts: %w", err)
	}
	defer rows.Close()
	var out []ledger.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: accounts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: accounts: %w", err)
	}
	return out, nil
}

// Accounts returns every account (the ledger checks them against its replay).
func (s *Store) Accounts(ctx context.Context) ([]ledger.Account, error) {
	return s.queryAccounts(ctx, `SELECT `+accountCols+` FROM accounts ORDER BY log_index`)
}

// AccountsByOwner returns the accounts owned by owner, oldest first.
func (s *Store) AccountsByOwner(ctx context.Context, owner string) ([]ledger.Account, error) {
	return s.queryAccounts(ctx, `SELECT `+accountCols+` FROM accounts WHERE owner = $1 ORDER BY log_index`, owner)
}

const transferCols = `id, debit_account_id, credit_account_id, amount, pending_id, timeout, code, user_data, flags, ts, log_index`

func scanTransfer(row pgx.Row) (ledger.Transfer, error) {
	var t ledger.Transfer
	var id, dr, cr [16]byte
	var pending *[16]byte
	var amount, timeout int64
	var code, flags int32
	err := row.Scan(&id, &dr, &cr, &amount, &pending, &timeout, &code, &t.UserData, &flags, &t.Timestamp, &t.LogIndex)
	t.ID, t.DebitAccountID, t.CreditAccountID, t.Amount = id, dr, cr, ledger.Amount(amount)
	if pending != nil {
		t.PendingID = *pending
	}
	t.Timeout, t.Code, t.Flags = uint32(timeout), uint16(code), ledger.TransferFlags(flags)
	return t, err
}

// Transfer returns one committed transfer.
func (s *Store) Transfer(ctx context.Context, id ledger.ID) (ledger.Transfer, error) {
	t, err := scanTransfer(s.pool.QueryRow(ctx, `SELECT `+transferCols+` FROM transfers WHERE id = $1`, [16]byte(id)))
	if errors.Is(err, pgx.ErrNoRows) {
		return t, coded.Errorf("transfer_not_found", "transfer %s not found", id)
	}
	if err != nil {
		return t, fmt.Errorf("postgres: transfer %s: %w", id, err)
	}
	return t, nil
}

// TransfersOfAccount returns the newest transfers touching an account, up to limit.
func (s *Store) TransfersOfAccount(ctx context.Context, id ledger.ID, limit int) ([]ledger.Transfer, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+transferCols+` FROM transfers WHERE debit_account_id = $1 OR credit_account_id = $1
		ORDER BY log_index DESC LIMIT $2`, [16]byte(id), limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: transfers of %s: %w", id, err)
	}
	defer rows.Close()
	var out []ledger.Transfer
	for rows.Next() {
		t, err := scanTransfer(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: transfers of %s: %w", id, err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: transfers of %s: %w", id, err)
	}
	return out, nil
}

// CreateToken stores a new API token for principal and returns its secret,
// which is not stored and cannot be shown again.
func (s *Store) CreateToken(ctx context.Context, p auth.Principal, name string) (string, error) {
	if err := auth.ValidName(p.Name); err != nil {
		return "", coded.Errorf("invalid", "principal: %v", err)
	}
	if _, err := auth.ParseRole(string(p.Role)); err != nil {
		return "", err
	}
	secret, hash := auth.NewToken()
	_, err := s.pool.Exec(ctx, `INSERT INTO api_tokens (token_hash, principal, role, name) VALUES ($1, $2, $3, $4)`, hash[:], p.Name, string(p.Role), name)
	if err != nil {
		return "", fmt.Errorf("postgres: create token: %w", err)
	}
	return secret, nil
}

// Authenticate returns the principal of a token secret, or an
// "unauthenticated" error for unknown or revoked tokens.
func (s *Store) Authenticate(ctx context.Context, secret string) (auth.Principal, error) {
	hash := auth.HashToken(secret)
	now := time.Now()
	if c, ok := s.principals.Load(hash); ok && now.Before(c.(cachedPrincipal).expires) {
		return c.(cachedPrincipal).p, nil
	}
	var p auth.Principal
	var role string
	err := s.pool.QueryRow(ctx, `SELECT principal, role FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL`, hash[:]).Scan(&p.Name, &role)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, coded.New("unauthenticated", "unknown or revoked token")
	}
	if err != nil {
		return p, fmt.Errorf("postgres: authenticate: %w", err)
	}
	p.Role = auth.Role(role)
	s.principals.Store(hash, cachedPrincipal{p: p, expires: now.Add(TokenCacheTTL)})
	return p, nil
}

// RevokeToken revokes a token by its secret.
func (s *Store) RevokeToken(ctx context.Context, secret string) error {
	hash := auth.HashToken(secret)
	tag, err := s.pool.Exec(ctx, `UPDATE api_tokens SET revoked_at = now() WHERE token_hash = $1 AND revoked_at IS NULL`, hash[:])
	s.principals.Delete(hash) // after the update: a concurrent Authenticate cannot cache it again
	if err != nil {
		return fmt.Errorf("postgres: revoke token: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return coded.New("not_found", "no such active token")
	}
	return nil
}
