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
// pipelineMax of them, whose log batch Commit has checked. The statements are sent together and followed by a
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
		// The transaction cannot be rolled back from here once the
		// statements are sent: a balance update that misses an account
		// fails inside the database instead (casting the message to an
		// integer raises an error that carries it; the message depends on
		// the count, or the planner would evaluate the cast up front).
		b.Queue(`WITH u AS (`+updateBalances+` RETURNING 1)
			SELECT CASE WHEN count(*) = $6 THEN 0 ELSE ('balance update missed an account: ' || count(*) || ' of ' || $6 || ' updated')::integer END FROM u`,
			append(balanceArgs(c.Balances), n)...)
	}
	if len(c.Log.Entries) > 0 {
		b.Queue(insertLogBatch, logBatchArgs(c.Log)...)
	}
	if b.Len() == 0 {
		return nil
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	return nil
}
