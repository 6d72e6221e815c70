package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spiceroute/spiceroute/agent/agentapi"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/contrib"
	"github.com/spiceroute/spiceroute/hub/ledger"
)

// The methods below implement contrib.Store.

// CreateEnrolment stores an enrolment token's hash.
func (s *Store) CreateEnrolment(ctx context.Context, e contrib.Enrolment) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO enrolments (token_hash, owner, created_by, expires_at) VALUES ($1, $2, $3, $4)`,
		e.Hash[:], e.Owner, e.CreatedBy, e.ExpiresAt)
	if err != nil {
		return fmt.Errorf("postgres: create enrolment: %w", err)
	}
	return nil
}

var errEnrolment = coded.New(contrib.CodeEnrolmentInvalid, "unknown, used or expired enrolment token; ask the hub's operator for a new one")

// EnrolmentOwner returns the owner of an unused, unexpired enrolment.
func (s *Store) EnrolmentOwner(ctx context.Context, hash [32]byte, now time.Time) (string, error) {
	var owner string
	err := s.pool.QueryRow(ctx, `SELECT owner FROM enrolments WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2`, hash[:], now).Scan(&owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", errEnrolment
	}
	if err != nil {
		return "", fmt.Errorf("postgres: enrolment: %w", err)
	}
	return owner, nil
}

// Join burns the enrolment, registers the machine and its agent token.
func (s *Store) Join(ctx context.Context, enrolment [32]byte, m *contrib.Machine, agentToken [32]byte, now time.Time) error {
	host, _ := json.Marshal(m.Host)
	offer, _ := json.Marshal(m.Offer)
	bench, _ := json.Marshal(m.JoinBenchmark)
	p := m.Principal()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE enrolments SET used_at = $2, machine = $3 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 AND owner = $4`,
			enrolment[:], now, [16]byte(m.ID), m.Owner)
		if err != nil {
			return fmt.Errorf("postgres: join: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return errEnrolment
		}
		if _, err := tx.Exec(ctx, `INSERT INTO machines (id, owner, account, node_name, region, floor_cpu, host, offer, agent_version, join_benchmark, joined_at, available)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, true)`,
			[16]byte(m.ID), m.Owner, [16]byte(m.Account), m.NodeName, m.Region, int64(m.FloorCPU), host, offer, m.AgentVersion, bench, now); err != nil {
			return fmt.Errorf("postgres: join: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO machine_benchmarks (machine, benchmark, at) VALUES ($1, $2, $3)`, [16]byte(m.ID), bench, now); err != nil {
			return fmt.Errorf("postgres: join: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO api_tokens (token_hash, principal, role, name) VALUES ($1, $2, $3, $4)`,
			agentToken[:], p.Name, string(auth.RoleMachine), "agent of "+m.NodeName); err != nil {
			return fmt.Errorf("postgres: join: %w", err)
		}
		return nil
	})
}

const machineCols = `id, owner, account, node_name, node_id, region, floor_cpu, host, offer, agent_version, join_benchmark, last_benchmark,
	joined_at, coalesce(last_heartbeat, 'epoch'), metrics, rtt, available, excluded`

func scanMachine(row pgx.Row) (*contrib.Machine, error) {
	var m contrib.Machine
	var id, account [16]byte
	var floor int64
	var host, offer, bench, last, metrics, rtt []byte
	if err := row.Scan(&id, &m.Owner, &account, &m.NodeName, &m.NodeID, &m.Region, &floor, &host, &offer, &m.AgentVersion, &bench, &last,
		&m.JoinedAt, &m.LastHeartbeat, &metrics, &rtt, &m.Available, &m.Excluded); err != nil {
		return nil, err
	}
	m.ID, m.Account, m.FloorCPU = id, account, ledger.Amount(floor)
	if m.LastHeartbeat.Equal(time.Unix(0, 0)) {
		m.LastHeartbeat = time.Time{}
	}
	for _, f := range []struct {
		b []byte
		v any
	}{{host, &m.Host}, {offer, &m.Offer}, {bench, &m.JoinBenchmark}} {
		if err := json.Unmarshal(f.b, f.v); err != nil {
			return nil, fmt.Errorf("machine %x: %w", id, err)
		}
	}
	if last != nil {
		m.LastBenchmark = new(agentapi.Benchmark)
		if err := json.Unmarshal(last, m.LastBenchmark); err != nil {
			return nil, fmt.Errorf("machine %x: %w", id, err)
		}
	}
	if metrics != nil {
		m.Metrics = new(agentapi.Metrics)
		if err := json.Unmarshal(metrics, m.Metrics); err != nil {
			return nil, fmt.Errorf("machine %x: %w", id, err)
		}
	}
	if rtt != nil {
		if err := json.Unmarshal(rtt, &m.RTT); err != nil {
			return nil, fmt.Errorf("machine %x: %w", id, err)
		}
	}
	return &m, nil
}

// Machine returns one machine, or a contrib.CodeNotFound error.
func (s *Store) Machine(ctx context.Context, id ledger.ID) (*contrib.Machine, error) {
	m, err := scanMachine(s.pool.QueryRow(ctx, `SELECT `+machineCols+` FROM machines WHERE id = $1`, [16]byte(id)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, coded.Errorf(contrib.CodeNotFound, "no machine %s", id)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: machine: %w", err)
	}
	return m, nil
}

// Machines lists the machines of owner, or all for "", oldest first.
func (s *Store) Machines(ctx context.Context, owner string) ([]*contrib.Machine, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+machineCols+` FROM machines WHERE $1 = '' OR owner = $1 ORDER BY joined_at, id`, owner)
	if err != nil {
		return nil, fmt.Errorf("postgres: machines: %w", err)
	}
	defer rows.Close()
	var out []*contrib.Machine
	for rows.Next() {
		m, err := scanMachine(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: machines: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: machines: %w", err)
	}
	return out, nil
}

// MachineByNode returns the machine whose Nomad node is nodeID.
func (s *Store) MachineByNode(ctx context.Context, nodeID string) (*contrib.Machine, error) {
	m, err := scanMachine(s.pool.QueryRow(ctx, `SELECT `+machineCols+` FROM machines WHERE node_id = $1 AND node_id <> ''`, nodeID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, coded.Errorf(contrib.CodeNotFound, "no machine on node %s", nodeID)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: machine of node: %w", err)
	}
	return m, nil
}

// Heartbeat records a heartbeat and counts it in the hour's uptime.
func (s *Store) Heartbeat(ctx context.Context, id ledger.ID, hb agentapi.Heartbeat, at time.Time) error {
	metrics, _ := json.Marshal(hb.Metrics)
	b := &pgx.Batch{}
	b.Queue(`UPDATE machines SET last_heartbeat = $2, metrics = $3, available = $4 WHERE id = $1`, [16]byte(id), at, metrics, hb.Available)
	b.Queue(`INSERT INTO machine_uptime (machine, hour, beats) VALUES ($1, date_trunc('hour', $2::timestamptz), 1)
		ON CONFLICT (machine, hour) DO UPDATE SET beats = machine_uptime.beats + 1`, [16]byte(id), at)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("postgres: heartbeat: %w", err)
	}
	return nil
}

// SetNodeID records the machine's Nomad node.
func (s *Store) SetNodeID(ctx context.Context, id ledger.ID, nodeID string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE machines SET node_id = $2 WHERE id = $1`, [16]byte(id), nodeID); err != nil {
		return fmt.Errorf("postgres: set node: %w", err)
	}
	return nil
}

// SetRTT records the round-trip times published as the machine's node meta.
func (s *Store) SetRTT(ctx context.Context, id ledger.ID, rtt map[string]int64) error {
	b, _ := json.Marshal(rtt)
	if _, err := s.pool.Exec(ctx, `UPDATE machines SET rtt = $2 WHERE id = $1`, [16]byte(id), b); err != nil {
		return fmt.Errorf("postgres: set rtt: %w", err)
	}
	return nil
}

// SetExcluded records whether the machine is excluded from new work.
func (s *Store) SetExcluded(ctx context.Context, id ledger.ID, excluded bool) error {
	if _, err := s.pool.Exec(ctx, `UPDATE machines SET excluded = $2 WHERE id = $1`, [16]byte(id), excluded); err != nil {
		return fmt.Errorf("postgres: set excluded: %w", err)
	}
	return nil
}

// RecordBenchmark stores a benchmark re-check as the machine's latest.
func (s *Store) RecordBenchmark(ctx context.Context, id ledger.ID, bm agentapi.Benchmark) error {
	b, _ := json.Marshal(bm)
	batch := &pgx.Batch{}
	batch.Queue(`UPDATE machines SET last_benchmark = $2 WHERE id = $1`, [16]byte(id), b)
	batch.Queue(`INSERT INTO machine_benchmarks (machine, benchmark, at) VALUES ($1, $2, now())`, [16]byte(id), b)
	if err := s.pool.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("postgres: benchmark: %w", err)
	}
	return nil
}

// Uptime returns the heartbeats a machine sent since a time.
func (s *Store) Uptime(ctx context.Context, id ledger.ID, since time.Time) (int64, error) {
	var beats int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(beats), 0) FROM machine_uptime WHERE machine = $1 AND hour >= date_trunc('hour', $2::timestamptz)`, [16]byte(id), since).Scan(&beats)
	if err != nil {
		return 0, fmt.Errorf("postgres: uptime: %w", err)
	}
	return beats, nil
}

// Outcomes counts the ended allocations on a Nomad node by outcome.
func (s *Store) Outcomes(ctx context.Context, nodeID string) (completed, failed, lost int64, err error) {
	err = s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'complete'), count(*) FILTER (WHERE status = 'failed'),
		count(*) FILTER (WHERE status = 'lost') FROM job_allocations WHERE node_id = $1`, nodeID).Scan(&completed, &failed, &lost)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("postgres: outcomes: %w", err)
	}
	return completed, failed, lost, nil
}

// Incidents counts upheld disputes and failed spot checks of a machine.
func (s *Store) Incidents(ctx context.Context, id ledger.ID) (disputes, spotChecksFailed int64, err error) {
	err = s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE kind = 'dispute'), count(*) FILTER (WHERE kind = 'spot_check_failed')
		FROM machine_incidents WHERE machine = $1`, [16]byte(id)).Scan(&disputes, &spotChecksFailed)
	if err != nil {
		return 0, 0, fmt.Errorf("postgres: incidents: %w", err)
	}
	return disputes, spotChecksFailed, nil
}

// RecordIncident records a dispute upheld against a machine or a spot
// check it failed.
func (s *Store) RecordIncident(ctx context.Context, id ledger.ID, kind, detail string) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO machine_incidents (machine, kind, detail) VALUES ($1, $2, $3)`, [16]byte(id), kind, detail); err != nil {
		return fmt.Errorf("postgres: incident: %w", err)
	}
	return nil
}
