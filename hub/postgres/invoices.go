package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/invoice"
)

// invoiceLock is the transaction-scoped advisory lock that serializes
// invoice numbering ("inv" in ASCII).
const invoiceLock = 0x696e76

// IssueInvoice gives inv the next number and stores it. Numbers are gapless:
// the number is taken under a lock in the same transaction as the insert.
func (s *Store) IssueInvoice(ctx context.Context, inv *invoice.Invoice) error {
	return s.issueInvoice(ctx, inv, "")
}

// IssueJobInvoice issues inv for the job admission key and records it on
// the admission, in one transaction; if the admission has its invoice
// already, inv.Number is set to it and nothing is issued.
func (s *Store) IssueJobInvoice(ctx context.Context, key string, inv *invoice.Invoice) error {
	return s.issueInvoice(ctx, inv, key)
}

// IssueStatement issues a contributor statement, once per contributor and
// period: if one exists for inv's party, From and To, inv is replaced by it
// and nothing is issued.
func (s *Store) IssueStatement(ctx context.Context, inv *invoice.Invoice) error {
	return s.issueInvoice(ctx, inv, "")
}

func (s *Store) issueInvoice(ctx context.Context, inv *invoice.Invoice, admission string) error {
	if err := inv.Finish(); err != nil {
		return err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: issue invoice: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, invoiceLock); err != nil {
		return fmt.Errorf("postgres: issue invoice: %w", err)
	}
	if admission != "" {
		var have *int64
		if err := tx.QueryRow(ctx, `SELECT invoice FROM job_admissions WHERE key = $1`, admission).Scan(&have); err != nil {
			return fmt.Errorf("postgres: issue invoice for %s: %w", admission, err)
		}
		if have != nil {
			inv.Number = *have
			return nil
		}
	}
	if inv.Kind == invoice.ContributorStatement {
		var doc []byte
		err := tx.QueryRow(ctx, `SELECT doc FROM invoices WHERE kind = 'statement' AND party = $1
			AND (doc->>'from')::timestamptz = $2 AND (doc->>'to')::timestamptz = $3`, inv.Party, inv.From, inv.To).Scan(&doc)
		if err == nil {
			return json.Unmarshal(doc, inv)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("postgres: issue statement: %w", err)
		}
	}
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(number), 0) + 1 FROM invoices`).Scan(&inv.Number); err != nil {
		return fmt.Errorf("postgres: issue invoice: %w", err)
	}
	doc, err := json.Marshal(inv)
	if err != nil {
		return fmt.Errorf("postgres: issue invoice: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO invoices (number, kind, party, job, issued_at, doc) VALUES ($1, $2, $3, $4, $5, $6)`,
		inv.Number, string(inv.Kind), inv.Party, inv.Job, inv.IssuedAt, doc)
	if err != nil {
		return fmt.Errorf("postgres: issue invoice: %w", err)
	}
	if admission != "" {
		if _, err := tx.Exec(ctx, `UPDATE job_admissions SET invoice = $2 WHERE key = $1`, admission, inv.Number); err != nil {
			return fmt.Errorf("postgres: issue invoice for %s: %w", admission, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: issue invoice: %w", err)
	}
	return nil
}

// Invoice returns invoice number n.
func (s *Store) Invoice(ctx context.Context, n int64) (*invoice.Invoice, error) {
	var doc []byte
	err := s.pool.QueryRow(ctx, `SELECT doc FROM invoices WHERE number = $1`, n).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, coded.Errorf("invoice_not_found", "invoice %d not found", n)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: invoice %d: %w", n, err)
	}
	var inv invoice.Invoice
	if err := json.Unmarshal(doc, &inv); err != nil {
		return nil, fmt.Errorf("postgres: invoice %d: %w", n, err)
	}
	return &inv, nil
}
