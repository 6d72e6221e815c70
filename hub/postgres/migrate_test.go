package postgres_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/spiceroute/spiceroute/hub/postgres"
	"github.com/spiceroute/spiceroute/hub/postgres/pgtest"
)

// TestMain for all of package postgres's tests. Tests using pgtest must be in
// package postgres_test: pgtest imports this package.
func TestMain(m *testing.M) { pgtest.Main(m) }

var schemaTables = []string{"accounts", "transfers", "log_batches", "log_checkpoints", "api_tokens"}

// latestVersion is the number of migrations in migrations/.
func latestVersion(t *testing.T) int32 {
	t.Helper()
	entries, err := os.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	var n int32
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") {
			n++
		}
	}
	return n
}

func mustConnect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func schemaVersion(t *testing.T, conn *pgx.Conn) int32 {
	t.Helper()
	var v int32
	if err := conn.QueryRow(context.Background(), "SELECT version FROM schema_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	conn := mustConnect(t, pgtest.NewEmptyDB(t))

	if err := postgres.Migrate(ctx, conn); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if got, want := schemaVersion(t, conn), latestVersion(t); got != want {
		t.Fatalf("schema version %d, want %d", got, want)
	}
	for _, table := range schemaTables {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s missing after Migrate (err %v)", table, err)
		}
	}

	// Again: a no-op that keeps the data.
	if _, err := conn.Exec(ctx, `INSERT INTO api_tokens (token_hash, principal, role, name)
		VALUES ('\x01', 'alice', 'renter', 'laptop')`); err != nil {
		t.Fatal(err)
	}
	if err := postgres.Migrate(ctx, conn); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM api_tokens").Scan(&n); err != nil || n != 1 {
		t.Fatalf("after second Migrate: %d tokens (err %v), want 1", n, err)
	}
	if got, want := schemaVersion(t, conn), latestVersion(t); got != want {
		t.Fatalf("schema version %d after second Migrate, want %d", got, want)
	}
}

// Several processes migrating one database at once: tern's advisory lock
// lets one migrate; the others find the schema current.
func TestMigrateConcurrently(t *testing.T) {
	url := pgtest.NewEmptyDB(t)
	const n = 4
	conns := make([]*pgx.Conn, n)
	for i := range conns {
		conns[i] = mustConnect(t, url)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, conn := range conns {
		wg.Go(func() { errs[i] = postgres.Migrate(context.Background(), conn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate #%d: %v", i, err)
		}
	}
	if got, want := schemaVersion(t, conns[0]), latestVersion(t); got != want {
		t.Fatalf("schema version %d, want %d", got, want)
	}
}

// A database migrated by a newer binary is refused, not migrated down.
func TestMigrateRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	conn := mustConnect(t, pgtest.NewDB(t))
	if _, err := conn.Exec(ctx, "UPDATE schema_version SET version = version + 1"); err != nil {
		t.Fatal(err)
	}
	if err := postgres.Migrate(ctx, conn); err == nil {
		t.Fatal("Migrate of a newer schema succeeded")
	}
	for _, table := range schemaTables {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s gone after refused Migrate (err %v)", table, err)
		}
	}
}
