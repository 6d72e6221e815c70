package pgtest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/spiceroute/spiceroute/hub/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Two databases from MustOpenDB have the schema and don't see each other's rows.
func TestDatabasesAreIsolated(t *testing.T) {
	ctx := context.Background()
	a, b := pgtest.MustOpenDB(t), pgtest.MustOpenDB(t)

	var nameA, nameB string
	if err := a.QueryRow(ctx, "SELECT current_database()").Scan(&nameA); err != nil {
		t.Fatal(err)
	}
	if err := b.QueryRow(ctx, "SELECT current_database()").Scan(&nameB); err != nil {
		t.Fatal(err)
	}
	if nameA == nameB {
		t.Fatalf("both pools on database %s", nameA)
	}
	if !strings.HasPrefix(nameA, "t_testdatabasesareisolated_") {
		t.Errorf("database name %q does not name the test", nameA)
	}

	if _, err := a.Exec(ctx, `INSERT INTO api_tokens (token_hash, principal, role, name)
		VALUES ('\x01', 'alice', 'renter', 'laptop')`); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		db   interface {
			QueryRow(context.Context, string, ...any) pgx.Row
		}
		want int
	}{
		{name: "Writer", db: a, want: 1},
		{name: "Other", db: b, want: 0},
	} {
		var n int
		if err := tt.db.QueryRow(ctx, "SELECT count(*) FROM api_tokens").Scan(&n); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if n != tt.want {
			t.Errorf("%s: %d tokens, want %d", tt.name, n, tt.want)
		}
	}
}

// NewDB's database is dropped when its test ends, even with a session still open.
func TestNewDBDroppedAtCleanup(t *testing.T) {
	ctx := context.Background()
	var name string
	t.Run("Create", func(t *testing.T) {
		conn, err := pgx.Connect(ctx, pgtest.NewDB(t))
		if err != nil {
			t.Fatal(err)
		}
		// Deliberately left open: the drop is WITH (FORCE).
		if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
	})
	admin := pgtest.MustOpenDB(t)
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestCluster(t *testing.T) {
	// Nil only when DATABASE_URL points at a server.
	if c := pgtest.Cluster(); c != nil && c.BinDir() == "" {
		t.Error("Cluster().BinDir() is empty")
	}
}
