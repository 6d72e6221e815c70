package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/payout"
)

var _ payout.Store = (*Store)(nil)

// PayoutProfile returns owner's payout profile.
func (s *Store) PayoutProfile(ctx context.Context, owner string) (payout.Profile, error) {
	var p payout.Profile
	var iban, bic string
	var threshold int64
	err := s.pool.QueryRow(ctx, `SELECT owner, legal_name, iban, bic, threshold, updated_at FROM payout_profiles WHERE owner = $1`, owner).
		Scan(&p.Owner, &p.LegalName, &iban, &bic, &threshold, &p.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, coded.Errorf(payout.CodeProfileNotFound, "%s has no payout profile", owner)
	}
	if err != nil {
		return p, fmt.Errorf("postgres: payout profile of %s: %w", owner, err)
	}
	p.IBAN, p.BIC, p.Threshold = payout.IBAN(iban), payout.BIC(bic), ledger.Amount(threshold)
	p.UpdatedAt = p.UpdatedAt.UTC()
	return p, nil
}

// SetPayoutProfile stores p, replacing the owner's profile.
func (s *Store) SetPayoutProfile(ctx context.Context, p payout.Profile) (payout.Profile, error) {
	_, err := s.pool.Exec(ctx, `INSERT INTO payout_profiles (owner, legal_name, iban, bic, threshold, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (owner) DO UPDATE SET legal_name = $2, iban = $3, bic = $4, threshold = $5, updated_at = $6`,
		p.Owner, p.LegalName, string(p.IBAN), string(p.BIC), int64(p.Threshold), p.UpdatedAt)
	if err != nil {
		return p, fmt.Errorf("postgres: set payout profile of %s: %w", p.Owner, err)
	}
	return p, nil
}

// PayoutProfiles returns every payout profile.
func (s *Store) PayoutProfiles(ctx context.Context) ([]payout.Profile, error) {
	rows, err := s.pool.Query(ctx, `SELECT owner, legal_name, iban, bic, threshold, updated_at FROM payout_profiles ORDER BY owner`)
	if err != nil {
		return nil, fmt.Errorf("postgres: payout profiles: %w", err)
	}
	defer rows.Close()
	var out []payout.Profile
	for rows.Next() {
		var p payout.Profile
		var iban, bic string
		var threshold int64
		if err := rows.Scan(&p.Owner, &p.LegalName, &iban, &bic, &threshold, &p.UpdatedAt); err != nil {
			return nil, fmt.Errorf("postgres: payout profiles: %w", err)
		}
		p.IBAN, p.BIC, p.Threshold = payout.IBAN(iban), payout.BIC(bic), ledger.Amount(threshold)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: payout profiles: %w", err)
	}
	return out, nil
}

// AccountsOfKind returns the committed accounts of a kind, oldest first.
func (s *Store) AccountsOfKind(ctx context.Context, kind ledger.AccountKind) ([]ledger.Account, error) {
	return s.queryAccounts(ctx, `SELECT `+accountCols+` FROM accounts WHERE kind = $1 ORDER BY log_index`, int16(kind))
}

const payoutRunCols = `batch, period, state, rate_cents, debtor, started_by, created_at, completed_at, paid, total_usp, total_cents, files`

func scanPayoutRun(row pgx.Row) (payout.Run, error) {
	var r payout.Run
	var period, state string
	var debtor []byte
	var usp int64
	err := row.Scan(&r.Batch, &period, &state, &r.RateCents, &debtor, &r.StartedBy, &r.CreatedAt, &r.CompletedAt, &r.Paid, &usp, &r.TotalCents, &r.Files)
	if err != nil {
		return r, err
	}
	if r.Period, err = payout.ParsePeriod(period); err != nil {
		return r, err
	}
	if err := json.Unmarshal(debtor, &r.Debtor); err != nil {
		return r, err
	}
	r.State, r.TotalUSP, r.CreatedAt = payout.State(state), ledger.Amount(usp), r.CreatedAt.UTC()
	if r.CompletedAt != nil {
		t := r.CompletedAt.UTC()
		r.CompletedAt = &t
	}
	return r, nil
}

// CreatePayoutRun stores r and its payouts in one transaction, unless the
// period has a run: then *r becomes that run and existed is true.
func (s *Store) CreatePayoutRun(ctx context.Context, r *payout.Run) (existed bool, err error) {
	debtor, err := json.Marshal(r.Debtor)
	if err != nil {
		return false, fmt.Errorf("postgres: create payout run: %w", err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("postgres: create payout run: %w", err)
	}
	defer tx.Rollback(ctx)
	err = tx.QueryRow(ctx, `INSERT INTO payout_runs (period, state, rate_cents, debtor, started_by, created_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (period) DO NOTHING RETURNING batch`,
		r.Period.String(), string(r.State), r.RateCents, debtor, r.StartedBy, r.CreatedAt).Scan(&r.Batch)
	if errors.Is(err, pgx.ErrNoRows) {
		tx.Rollback(ctx)
		got, err := s.PayoutRun(ctx, r.Period)
		if err != nil {
			return false, err
		}
		*r = *got
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("postgres: create payout run %s: %w", r.Period, err)
	}
	for i := range r.Payouts {
		p := &r.Payouts[i]
		p.Batch = r.Batch
		ts, err := json.Marshal(p.Transfers)
		if err != nil {
			return false, fmt.Errorf("postgres: create payout run %s: %w", r.Period, err)
		}
		_, err = tx.Exec(ctx, `INSERT INTO payouts (batch, owner, legal_name, iban, bic, available, amount, cents, carried, transfers, end_to_end_id, state, detail)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			r.Batch, p.Owner, p.LegalName, string(p.IBAN), string(p.BIC), int64(p.Available), int64(p.Amount), p.Cents, int64(p.Carried),
			ts, p.EndToEndID, string(p.State), p.Detail)
		if err != nil {
			return false, fmt.Errorf("postgres: create payout run %s: payout of %s: %w", r.Period, p.Owner, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("postgres: create payout run %s: %w", r.Period, err)
	}
	return false, nil
}

// PayoutRun returns the run of a period with its payouts.
func (s *Store) PayoutRun(ctx context.Context, p payout.Period) (*payout.Run, error) {
	r, err := scanPayoutRun(s.pool.QueryRow(ctx, `SELECT `+payoutRunCols+` FROM payout_runs WHERE period = $1`, p.String()))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, coded.Errorf(payout.CodeRunNotFound, "no payout run for %s", p)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: payout run %s: %w", p, err)
	}
	if r.Payouts, err = s.queryPayouts(ctx, `WHERE p.batch = $1 ORDER BY p.owner`, r.Batch); err != nil {
		return nil, err
	}
	return &r, nil
}

// PayoutRuns returns up to limit runs, newest period first, without payouts.
func (s *Store) PayoutRuns(ctx context.Context, limit int) ([]payout.Run, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+payoutRunCols+` FROM payout_runs ORDER BY period DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: payout runs: %w", err)
	}
	defer rows.Close()
	var out []payout.Run
	for rows.Next() {
		r, err := scanPayoutRun(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: payout runs: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: payout runs: %w", err)
	}
	return out, nil
}

// SetPayoutStates records the state and detail of payouts of run batch.
func (s *Store) SetPayoutStates(ctx context.Context, batch int64, ps []payout.Payout) error {
	owners, states, details := make([]string, len(ps)), make([]string, len(ps)), make([]string, len(ps))
	for i, p := range ps {
		owners[i], states[i], details[i] = p.Owner, string(p.State), p.Detail
	}
	tag, err := s.pool.Exec(ctx, `UPDATE payouts p SET state = u.state, detail = u.detail
		FROM unnest($2::text[], $3::text[], $4::text[]) AS u(owner, state, detail) WHERE p.batch = $1 AND p.owner = u.owner`,
		batch, owners, states, details)
	if err != nil {
		return fmt.Errorf("postgres: payout states of batch %d: %w", batch, err)
	}
	if tag.RowsAffected() != int64(len(ps)) {
		return fmt.Errorf("postgres: payout states of batch %d: updated %d of %d payouts", batch, tag.RowsAffected(), len(ps))
	}
	return nil
}

// CompletePayoutRun records r's state, totals, files and completion time.
func (s *Store) CompletePayoutRun(ctx context.Context, r *payout.Run) error {
	files := r.Files
	if files == nil {
		files = []string{}
	}
	_, err := s.pool.Exec(ctx, `UPDATE payout_runs SET state = $2, completed_at = $3, paid = $4, total_usp = $5, total_cents = $6, files = $7 WHERE batch = $1`,
		r.Batch, string(r.State), r.CompletedAt, r.Paid, int64(r.TotalUSP), r.TotalCents, files)
	if err != nil {
		return fmt.Errorf("postgres: complete payout run %s: %w", r.Period, err)
	}
	return nil
}

// PayoutsOf returns up to limit payouts of owner, newest first.
func (s *Store) PayoutsOf(ctx context.Context, owner string, limit int) ([]payout.Payout, error) {
	return s.queryPayouts(ctx, `WHERE p.owner = $1 ORDER BY p.batch DESC LIMIT $2`, owner, limit)
}

func (s *Store) queryPayouts(ctx context.Context, where string, args ...any) ([]payout.Payout, error) {
	rows, err := s.pool.Query(ctx, `SELECT p.batch, r.period, p.owner, p.legal_name, p.iban, p.bic, p.available, p.amount, p.cents, p.carried,
		p.transfers, p.end_to_end_id, p.state, p.detail FROM payouts p JOIN payout_runs r ON r.batch = p.batch `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: payouts: %w", err)
	}
	defer rows.Close()
	var out []payout.Payout
	for rows.Next() {
		var p payout.Payout
		var period, iban, bic, state string
		var available, amount, carried int64
		var ts []byte
		if err := rows.Scan(&p.Batch, &period, &p.Owner, &p.LegalName, &iban, &bic, &available, &amount, &p.Cents, &carried,
			&ts, &p.EndToEndID, &state, &p.Detail); err != nil {
			return nil, fmt.Errorf("postgres: payouts: %w", err)
		}
		if p.Period, err = payout.ParsePeriod(period); err != nil {
			return nil, fmt.Errorf("postgres: payouts: %w", err)
		}
		if err := json.Unmarshal(ts, &p.Transfers); err != nil {
			return nil, fmt.Errorf("postgres: payouts: %w", err)
		}
		p.IBAN, p.BIC, p.State = payout.IBAN(iban), payout.BIC(bic), payout.State(state)
		p.Available, p.Amount, p.Carried = ledger.Amount(available), ledger.Amount(amount), ledger.Amount(carried)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: payouts: %w", err)
	}
	return out, nil
}

// Withheld reports whether owner's payout is withheld in period, and why
// (the reasons of every active withhold, newest first).
func (s *Store) Withheld(ctx context.Context, owner string, period payout.Period) (string, bool, error) {
	ws, err := s.queryWithholds(ctx, `WHERE owner = $1 AND released_at IS NULL AND (period IS NULL OR period = $2) ORDER BY id DESC`, owner, period.String())
	if err != nil {
		return "", false, err
	}
	if len(ws) == 0 {
		return "", false, nil
	}
	reason := ws[0].Reason
	for _, w := range ws[1:] {
		reason += "; " + w.Reason
	}
	return reason, true, nil
}

// AddWithhold stores a new withhold and returns it with its ID.
func (s *Store) AddWithhold(ctx context.Context, w payout.Withhold) (payout.Withhold, error) {
	var period *string
	if !w.Period.IsZero() {
		p := w.Period.String()
		period = &p
	}
	err := s.pool.QueryRow(ctx, `INSERT INTO payout_withholds (owner, period, reason, created_by, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		w.Owner, period, w.Reason, w.CreatedBy, w.CreatedAt).Scan(&w.ID)
	if err != nil {
		return w, fmt.Errorf("postgres: add withhold: %w", err)
	}
	return w, nil
}

// ReleaseWithhold releases an active withhold.
func (s *Store) ReleaseWithhold(ctx context.Context, id int64, by string) (payout.Withhold, error) {
	ws, err := s.queryWithholds(ctx, `WHERE id = $1 AND released_at IS NULL`, id)
	if err != nil {
		return payout.Withhold{}, err
	}
	if len(ws) == 0 {
		return payout.Withhold{}, coded.Errorf(payout.CodeWithholdNotFound, "no active withhold %d", id)
	}
	now := time.Now().UTC()
	tag, err := s.pool.Exec(ctx, `UPDATE payout_withholds SET released_at = $2, released_by = $3 WHERE id = $1 AND released_at IS NULL`, id, now, by)
	if err != nil {
		return payout.Withhold{}, fmt.Errorf("postgres: release withhold %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return payout.Withhold{}, coded.Errorf(payout.CodeWithholdNotFound, "no active withhold %d", id)
	}
	w := ws[0]
	w.ReleasedAt, w.ReleasedBy = &now, by
	return w, nil
}

// ListWithholds returns the active withholds (all with all set), newest first.
func (s *Store) ListWithholds(ctx context.Context, all bool) ([]payout.Withhold, error) {
	where := `WHERE released_at IS NULL ORDER BY id DESC`
	if all {
		where = `ORDER BY id DESC`
	}
	return s.queryWithholds(ctx, where)
}

func (s *Store) queryWithholds(ctx context.Context, where string, args ...any) ([]payout.Withhold, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, owner, period, reason, created_by, created_at, released_at, released_by FROM payout_withholds `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: withholds: %w", err)
	}
	defer rows.Close()
	var out []payout.Withhold
	for rows.Next() {
		var w payout.Withhold
		var period *string
		if err := rows.Scan(&w.ID, &w.Owner, &period, &w.Reason, &w.CreatedBy, &w.CreatedAt, &w.ReleasedAt, &w.ReleasedBy); err != nil {
			return nil, fmt.Errorf("postgres: withholds: %w", err)
		}
		if period != nil {
			if w.Period, err = payout.ParsePeriod(*period); err != nil {
				return nil, fmt.Errorf("postgres: withholds: %w", err)
			}
		}
		w.CreatedAt = w.CreatedAt.UTC()
		if w.ReleasedAt != nil {
			t := w.ReleasedAt.UTC()
			w.ReleasedAt = &t
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: withholds: %w", err)
	}
	return out, nil
}
