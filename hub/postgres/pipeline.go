package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/spiceroute/spiceroute/hub/ledger"
)

// pipelineMax is the most transfers a commit writes as one pipelined batch.
// Most commits are small (a job's hold, a settlement): sending the rows,
// the balances and the log batch in one round trip, as one implicit
// transaction, saves the BEGIN, COMMIT and COPY exchanges, each a wake-up
// of the database and of the hub. A larger commit uses COPY, whose rows
// the hub encodes itself at a fraction of the cost of arrays.
const pipelineMax = 64

// commitPipelined is Commit for a commit of transfers only, at most
// pipelineMax of them. The statements are sent together and followed by a
// single Sync, so PostgreSQL runs them as one transaction: any error rolls
// back all of them.
func (s *Store) commitPipelined(ctx context.Context, c *ledger.Commit) error {
	b := &pgx.Batch{}
	if n := len(c.Transfers); n > 0 {
		ids, dr, cr, pend := make([][16]byte, n), make([][16]byte, n), make([][16]byte, n), make([]pgtype.UUID, n)
		amount, timeout, ts, logIndex := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		code, flags, userData := make([]int32, n), make([]int32, n), make([]string, n)
		for i := range c.Transfers {
			t := &c.Transfers[i]
			ids[i], dr[i], cr[i] = t.ID, t.DebitAccountID, t.CreditAccountID
			pend[i] = pgtype.UUID{Bytes: t.PendingID, Valid: !t.PendingID.IsZero()}
			amount[i], timeout[i], ts[i], logIndex[i] = int64(t.Amount), int64(t.Timeout), t.Timestamp, t.LogIndex
			code[i], flags[i], userData[i] = int32(t.Code), int32(t.Flags), t.UserData
		}
		b.Queue(`INSERT INTO transfers (`+transferCols+`)
			SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[], $5::uuid[], $6::bigint[], $7::integer[], $8::text[], $9::integer[], $10::bigint[], $11::bigint[])`,
			ids, dr, cr, amount, pend, timeout, code, userData, flags, ts, logIndex)
	}
	if n := len(c.Balances); n > 0 {
		ids := make([][16]byte, n)
		dp, dpo, cp, cpo := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		for i, a := range c.Balances {
			ids[i] = a.ID
			dp[i], dpo[i], cp[i], cpo[i] = int64(a.DebitsPending), int64(a.DebitsPosted), int64(a.CreditsPending), int64(a.CreditsPosted)
		}
		// The transaction cannot be rolled back from here once the
		// statements are sent: a balance update that misses an account
		// fails inside the database instead (casting the message to an
		// integer raises an error that carries it; the message depends on
		// the count, or the planner would evaluate the cast up front).
		b.Queue(`WITH u AS (UPDATE accounts a SET debits_pending = u.dp, debits_posted = u.dpo, credits_pending = u.cp, credits_posted = u.cpo
			FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) AS u(id, dp, dpo, cp, cpo) WHERE a.id = u.id RETURNING 1)
			SELECT CASE WHEN count(*) = $6 THEN 0 ELSE ('balance update missed an account: ' || count(*) || ' of ' || $6 || ' updated')::integer END FROM u`,
			ids, dp, dpo, cp, cpo, n)
	}
	if n := len(c.Log.Entries); n > 0 {
		if n != len(c.Transfers) {
			return fmt.Errorf("postgres: commit log: %d leaves for %d transfers", n, len(c.Transfers))
		}
		hashes := make([]byte, 0, 32*len(c.Log.Hashes))
		for _, h := range c.Log.Hashes {
			hashes = append(hashes, h[:]...)
		}
		b.Queue(`INSERT INTO log_batches (first_index, count, first_hash_index, hashes) VALUES ($1, $2, $3, $4)`,
			c.Log.FirstIndex, n, c.Log.FirstHashIndex, hashes)
	}
	if b.Len() == 0 {
		return nil
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	return nil
}
