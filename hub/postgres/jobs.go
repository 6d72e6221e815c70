package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/jobs"
	"github.com/spiceroute/spiceroute/hub/ledger"
)

// The methods below implement jobs.Store.

const admissionCols = `key, base, renter, job_id, account, quote, hold, charged, commission, state, detail, coalesce(invoice, 0), created_at, coalesce(ended_at, 'epoch')`

func scanAdmission(row pgx.Row) (*jobs.Record, error) {
	var r jobs.Record
	var account [16]byte
	var quote, hold []byte
	var charged, commission int64
	var state string
	var ended time.Time
	if err := row.Scan(&r.Key, &r.Base, &r.Renter, &r.JobID, &account, &quote, &hold, &charged, &commission, &state, &r.Detail, &r.Invoice, &r.CreatedAt, &ended); err != nil {
		return nil, err
	}
	r.Account, r.Charged, r.Commission, r.State = account, ledger.Amount(charged), ledger.Amount(commission), jobs.State(state)
	if ended.After(time.Unix(0, 0)) {
		r.EndedAt = ended
	}
	if err := json.Unmarshal(quote, &r.Quote); err != nil {
		return nil, fmt.Errorf("admission %s: quote: %w", r.Key, err)
	}
	if err := json.Unmarshal(hold, &r.Hold); err != nil {
		return nil, fmt.Errorf("admission %s: hold: %w", r.Key, err)
	}
	return &r, nil
}

func (s *Store) queryAdmissions(ctx context.Context, q string, args ...any) ([]*jobs.Record, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+admissionCols+` FROM job_admissions `+q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: admissions: %w", err)
	}
	defer rows.Close()
	var out []*jobs.Record
	for rows.Next() {
		r, err := scanAdmission(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: admissions: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: admissions: %w", err)
	}
	return out, nil
}

// InsertAdmission stores r unless its key exists, and returns the stored
// admission.
func (s *Store) InsertAdmission(ctx context.Context, r *jobs.Record) (*jobs.Record, error) {
	quote, err := json.Marshal(r.Quote)
	if err != nil {
		return nil, fmt.Errorf("postgres: admission: %w", err)
	}
	hold, err := json.Marshal(r.Hold)
	if err != nil {
		return nil, fmt.Errorf("postgres: admission: %w", err)
	}
	stored := *r
	// Committed without waiting for the disk: the admission's hold, placed
	// next by the ledger in the same database, commits synchronously, and
	// flushing its WAL makes this earlier commit durable too. If the hub
	// dies before the hold, neither survives, and nothing is owed.
	async, err := s.asyncPool(ctx)
	if err != nil {
		return nil, err
	}
	err = async.QueryRow(ctx, `INSERT INTO job_admissions (key, base, renter, job_id, account, quote, hold, state)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (key) DO NOTHING RETURNING created_at`,
		r.Key, r.Base, r.Renter, r.JobID, [16]byte(r.Account), quote, hold, string(r.State)).Scan(&stored.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return s.Admission(ctx, r.Key)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: admission %s: %w", r.Key, err)
	}
	s.recorded(&stored)
	return &stored, nil
}

// BaseAdmissions lists the admissions ever made with base, oldest first.
func (s *Store) BaseAdmissions(ctx context.Context, base string) ([]*jobs.Record, error) {
	return s.queryAdmissions(ctx, `WHERE base = $1 ORDER BY created_at`, base)
}

// Admission returns one admission.
func (s *Store) Admission(ctx context.Context, key string) (*jobs.Record, error) {
	rs, err := s.queryAdmissions(ctx, `WHERE key = $1`, key)
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, coded.Errorf("not_found", "admission %s not found", key)
	}
	return rs[0], nil
}

// OpenAdmissions lists every open admission, oldest first.
func (s *Store) OpenAdmissions(ctx context.Context) ([]*jobs.Record, error) {
	return s.queryAdmissions(ctx, `WHERE state IN ('admitted', 'running') ORDER BY created_at`)
}

// RenterAdmissions lists a renter's admissions, newest first.
func (s *Store) RenterAdmissions(ctx context.Context, renter string, limit int) ([]*jobs.Record, error) {
	return s.queryAdmissions(ctx, `WHERE renter = $1 ORDER BY created_at DESC LIMIT $2`, renter, limit)
}

// JobAdmissions lists a renter's admissions of a job, newest first.
func (s *Store) JobAdmissions(ctx context.Context, renter, jobID string, limit int) ([]*jobs.Record, error) {
	return s.queryAdmissions(ctx, `WHERE renter = $1 AND job_id = $2 ORDER BY created_at DESC LIMIT $3`, renter, jobID, limit)
}

// SetAdmissionState moves an admission to state st.
//
// The change is committed without waiting for the disk: every state is
// derived again by the settlement loop from the ledger and Nomad if it is
// lost in a crash.
func (s *Store) SetAdmissionState(ctx context.Context, key string, st jobs.State, detail string) error {
	async, err := s.asyncPool(ctx)
	if err != nil {
		return err
	}
	var renter string
	err = async.QueryRow(ctx, `UPDATE job_admissions SET state = $2, detail = $3,
		ended_at = CASE WHEN $2 IN ('settled', 'released', 'failed') THEN now() ELSE ended_at END WHERE key = $1 RETURNING renter`, key, string(st), detail).Scan(&renter)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("postgres: admission %s: %w", key, err)
	}
	if !st.Open() {
		s.forgetUsage(renter)
	}
	return nil
}

// MarkRunning records that the jobs of admissions keys reached Nomad: those
// still admitted become running.
func (s *Store) MarkRunning(ctx context.Context, keys []string) error {
	async, err := s.asyncPool(ctx)
	if err != nil {
		return err
	}
	if _, err := async.Exec(ctx, `UPDATE job_admissions SET state = 'running' WHERE key = ANY($1) AND state = 'admitted'`, keys); err != nil {
		return fmt.Errorf("postgres: mark %d admissions running: %w", len(keys), err)
	}
	return nil
}

// Uninvoiced lists settled admissions that have no invoice yet.
func (s *Store) Uninvoiced(ctx context.Context) ([]*jobs.Record, error) {
	return s.queryAdmissions(ctx, `WHERE state = 'settled' AND invoice IS NULL ORDER BY created_at`)
}

// Allocations lists an admission's allocations.
func (s *Store) Allocations(ctx context.Context, admission string) ([]jobs.AllocRecord, error) {
	rows, err := s.pool.Query(ctx, `SELECT alloc_id, admission, node_id, contributor, usage, modify_index, gross, commission, refunded, cpu_price
		FROM job_allocations WHERE admission = $1 ORDER BY alloc_id`, admission)
	if err != nil {
		return nil, fmt.Errorf("postgres: allocations: %w", err)
	}
	defer rows.Close()
	var out []jobs.AllocRecord
	for rows.Next() {
		var a jobs.AllocRecord
		var contributor [16]byte
		var usage []byte
		var idx, gross, commission, cpuPrice int64
		if err := rows.Scan(&a.ID, &a.Admission, &a.Node, &contributor, &usage, &idx, &gross, &commission, &a.Refunded, &cpuPrice); err != nil {
			return nil, fmt.Errorf("postgres: allocations: %w", err)
		}
		a.Contributor, a.ModifyIndex, a.Gross, a.Commission, a.CPUPrice = contributor, uint64(idx), ledger.Amount(gross), ledger.Amount(commission), ledger.Amount(cpuPrice)
		if err := json.Unmarshal(usage, &a.Usage); err != nil {
			return nil, fmt.Errorf("postgres: allocation %s: %w", a.ID, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: allocations: %w", err)
	}
	return out, nil
}

// AllocationAdmission is the admission an allocation was first seen under,
// or "" for an allocation not seen before.
func (s *Store) AllocationAdmission(ctx context.Context, allocID string) (string, error) {
	var key string
	err := s.pool.QueryRow(ctx, `SELECT admission FROM job_allocations WHERE alloc_id = $1`, allocID).Scan(&key)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("postgres: allocation %s: %w", allocID, err)
	}
	return key, nil
}

// SaveAllocation stores a's usage snapshot unless a newer one is stored.
// A lost allocation stays lost: Nomad may later report it complete, when
// the machine came back and stopped it, but the renter does not pay for
// work lost to the contributor's machine.
func (s *Store) SaveAllocation(ctx context.Context, a jobs.AllocRecord) error {
	usage, err := json.Marshal(a.Usage)
	if err != nil {
		return fmt.Errorf("postgres: allocation %s: %w", a.ID, err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO job_allocations (alloc_id, admission, node_id, contributor, status, usage, modify_index, cpu_price)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (alloc_id) DO UPDATE SET status = excluded.status, usage = excluded.usage, modify_index = excluded.modify_index
		WHERE job_allocations.modify_index <= excluded.modify_index AND job_allocations.status <> 'lost'`,
		a.ID, a.Admission, a.Node, [16]byte(a.Contributor), string(a.Usage.Status), usage, int64(a.ModifyIndex), int64(a.CPUPrice))
	if err != nil {
		return fmt.Errorf("postgres: allocation %s: %w", a.ID, err)
	}
	return nil
}

// Cursor is the last Nomad event index the meter processed (0: none).
func (s *Store) Cursor(ctx context.Context) (uint64, error) {
	var idx int64
	err := s.pool.QueryRow(ctx, `SELECT event_index FROM meter_cursor WHERE id = 1`).Scan(&idx)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: meter cursor: %w", err)
	}
	return uint64(idx), nil
}

// SaveCursor records the last processed Nomad event index; it never moves back.
func (s *Store) SaveCursor(ctx context.Context, index uint64) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO meter_cursor (id, event_index) VALUES (1, $1)
		ON CONFLICT (id) DO UPDATE SET event_index = greatest(meter_cursor.event_index, excluded.event_index)`, int64(index))
	if err != nil {
		return fmt.Errorf("postgres: meter cursor: %w", err)
	}
	return nil
}

// ResetCursor sets the event cursor, even back (a new Nomad cluster).
func (s *Store) ResetCursor(ctx context.Context, index uint64) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO meter_cursor (id, event_index) VALUES (1, $1)
		ON CONFLICT (id) DO UPDATE SET event_index = excluded.event_index`, int64(index))
	if err != nil {
		return fmt.Errorf("postgres: meter cursor: %w", err)
	}
	return nil
}

// PlanSettlement stores st as planned and sets its ID and time.
func (s *Store) PlanSettlement(ctx context.Context, st *jobs.Settlement) error {
	plan, err := json.Marshal(st.Plan)
	if err != nil {
		return fmt.Errorf("postgres: settlement: %w", err)
	}
	st.State = "planned"
	err = s.pool.QueryRow(ctx, `INSERT INTO job_settlements (admission, kind, state, plan) VALUES ($1, $2, 'planned', $3) RETURNING id, created_at`,
		st.Admission, string(st.Kind), plan).Scan(&st.ID, &st.CreatedAt)
	if err != nil {
		return fmt.Errorf("postgres: settlement of %s: %w", st.Admission, err)
	}
	return nil
}

// ApplySettlement marks st applied and books it on its admission and
// allocations, in one transaction. Applying an applied settlement again
// changes nothing.
func (s *Store) ApplySettlement(ctx context.Context, st *jobs.Settlement) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: apply settlement %d: %w", st.ID, err)
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `UPDATE job_settlements SET state = 'applied' WHERE id = $1 AND state = 'planned'`, st.ID)
	if err != nil {
		return fmt.Errorf("postgres: apply settlement %d: %w", st.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return nil // applied already
	}
	p := st.Plan
	sign := int64(1)
	if st.Kind == jobs.KindRefund {
		sign = -1
	}
	for _, sh := range p.Shares {
		_, err := tx.Exec(ctx, `UPDATE job_allocations SET gross = gross + $2, commission = commission + $3, refunded = refunded OR $4 WHERE alloc_id = $1`,
			sh.Allocation, sign*int64(sh.Gross), sign*int64(sh.Commission), st.Kind == jobs.KindRefund)
		if err != nil {
			return fmt.Errorf("postgres: apply settlement %d: %w", st.ID, err)
		}
	}
	set := `charged = charged + $2, commission = commission + $3`
	args := []any{st.Admission, sign * int64(p.Charged), sign * int64(p.Commission)}
	switch st.Kind {
	case jobs.KindTick:
		hold, err := json.Marshal(p.Next)
		if err != nil {
			return fmt.Errorf("postgres: apply settlement %d: %w", st.ID, err)
		}
		set += `, hold = $4, state = 'running'`
		args = append(args, hold)
	case jobs.KindFinal:
		set += `, state = 'settled', ended_at = now(), hold = jsonb_set(hold, '{amount}', '0')`
	case jobs.KindRelease:
		set += `, state = 'released', ended_at = now(), hold = jsonb_set(hold, '{amount}', '0')`
	}
	var renter string
	if err := tx.QueryRow(ctx, `UPDATE job_admissions SET `+set+` WHERE key = $1 RETURNING renter`, args...).Scan(&renter); err != nil {
		return fmt.Errorf("postgres: apply settlement %d: %w", st.ID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: apply settlement %d: %w", st.ID, err)
	}
	if st.Kind == jobs.KindFinal || st.Kind == jobs.KindRelease {
		s.forgetUsage(renter)
	}
	st.State = "applied"
	return nil
}

// FailSettlement marks a planned settlement failed.
func (s *Store) FailSettlement(ctx context.Context, id int64, msg string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE job_settlements SET state = 'failed', error = $2 WHERE id = $1 AND state = 'planned'`, id, msg); err != nil {
		return fmt.Errorf("postgres: settlement %d: %w", id, err)
	}
	return nil
}

// SettlementsBetween lists the settlements applied in [from, to), oldest
// first, with their jobs.
func (s *Store) SettlementsBetween(ctx context.Context, from, to time.Time) ([]jobs.JobSettlement, error) {
	return s.querySettlements(ctx, `WHERE s.state = 'applied' AND s.created_at >= $1 AND s.created_at < $2 ORDER BY s.id`, from, to)
}

// Settlements lists an admission's settlements, oldest first.
func (s *Store) Settlements(ctx context.Context, admission string) ([]jobs.Settlement, error) {
	sts, err := s.querySettlements(ctx, `WHERE s.admission = $1 ORDER BY s.id`, admission)
	out := make([]jobs.Settlement, len(sts))
	for i, st := range sts {
		out[i] = st.Settlement
	}
	return out, err
}

// PlannedSettlements lists every settlement planned and not yet applied or
// failed, by admission, oldest first.
func (s *Store) PlannedSettlements(ctx context.Context) (map[string][]jobs.Settlement, error) {
	sts, err := s.querySettlements(ctx, `WHERE s.state = 'planned' ORDER BY s.id`)
	if err != nil {
		return nil, err
	}
	out := map[string][]jobs.Settlement{}
	for _, st := range sts {
		out[st.Admission] = append(out[st.Admission], st.Settlement)
	}
	return out, nil
}

// querySettlements reads settlements (alias s) with their jobs (alias a).
func (s *Store) querySettlements(ctx context.Context, where string, args ...any) ([]jobs.JobSettlement, error) {
	rows, err := s.pool.Query(ctx, `SELECT s.id, s.admission, s.kind, s.state, s.plan, s.error, s.created_at, a.renter, a.job_id
		FROM job_settlements s JOIN job_admissions a ON a.key = s.admission `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: settlements: %w", err)
	}
	defer rows.Close()
	var out []jobs.JobSettlement
	for rows.Next() {
		var st jobs.JobSettlement
		var kind string
		var plan []byte
		if err := rows.Scan(&st.ID, &st.Admission, &kind, &st.State, &plan, &st.Error, &st.CreatedAt, &st.Renter, &st.JobID); err != nil {
			return nil, fmt.Errorf("postgres: settlements: %w", err)
		}
		st.Kind = jobs.SettlementKind(kind)
		if err := json.Unmarshal(plan, &st.Plan); err != nil {
			return nil, fmt.Errorf("postgres: settlement %d: %w", st.ID, err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: settlements: %w", err)
	}
	return out, nil
}

var _ jobs.Store = (*Store)(nil)
