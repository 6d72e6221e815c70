package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

// migrationsFS holds the schema as tern migrations: migrations/NNN_name.sql,
// numbered from 001 without gaps, the up SQL above and the down SQL below a
// "---- create above / drop below ----" line. tern runs each file through
// text/template (with sprig functions) before executing it, so "{{" in SQL
// must be escaped. Never edit a migration that has shipped: add the next one.
//
//go:embed migrations/*.sql
var migrationsFS embed.FS

// versionTable is tern's one-row table holding the schema version (the
// number of the last migration applied). It is created, like the schema's
// tables, in the first schema of the connection's search_path.
const versionTable = "schema_version"

// Migrate brings the database at conn to the latest schema version, applying
// each missing migration in its own transaction. It is a no-op when the
// database is up to date, and it fails, changing nothing, when the database
// has a newer schema than this binary knows (tern never migrates down here).
//
// It is safe to run from several processes at once: tern holds a
// session-level advisory lock (pg_advisory_lock, one fixed key, per database)
// while it creates the version table and while it migrates, so one process
// migrates and the others then find nothing to do. If ctx is cancelled while
// the lock is held, the unlock may fail and the lock then lives as long as
// conn's session: close conn after a failed Migrate.
func Migrate(ctx context.Context, conn *pgx.Conn) error {
	m, err := migrate.NewMigrator(ctx, conn, versionTable)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	migrations, err := fs.Sub(migrationsFS, "migrations")
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	if err := m.LoadMigrations(migrations); err != nil {
		return fmt.Errorf("postgres: migrate: load: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	return nil
}
