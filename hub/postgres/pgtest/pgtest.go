// Package pgtest gives each test a fresh, migrated PostgreSQL database,
// cloned from a template database on one server per test binary.
//
// Use it from TestMain, then call NewDB or MustOpenDB in tests:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestX(t *testing.T) {
//		pool := pgtest.MustOpenDB(t)
//		...
//	}
//
// The server is an ephemeral pgcluster.Cluster started by Main, or, when the
// environment variable DATABASE_URL is set, the server it points at (as test
// infrastructure, this package reads the environment; product code does
// not). DATABASE_URL must be a postgres:// URL whose role may create
// databases (CREATEDB); Main creates a uniquely named template database
// there, and each test a database named after the test, dropped when it
// ends. A killed test binary leaves them behind (pgtest_* and t_*).
//
// A test package that uses pgtest from package hub/postgres itself must be the
// external test package (package postgres_test): pgtest imports hub/postgres.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spiceroute/spiceroute/hub/postgres"
	"github.com/spiceroute/spiceroute/hub/postgres/pgcluster"
)

// server is what Main set up; read-only once tests run.
var server struct {
	started  bool
	cluster  *pgcluster.Cluster // nil with DATABASE_URL
	base     *url.URL           // any database's URL; the path is replaced
	template string             // migrated database that NewDB copies
}

// Main starts the server, creates the migrated template database, runs the
// tests, drops the template (on DATABASE_URL's server) or stops the cluster,
// and exits with the tests' status. If the server cannot be set up it prints
// why and exits with status 1: tests needing PostgreSQL fail, never skip.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if err := setup(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: FAIL: cannot set up PostgreSQL: %v\n", err)
		teardown()
		return 1
	}
	code := m.Run()
	if err := teardown(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func setup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	server.started = true

	if dsn := os.Getenv("DATABASE_URL"); dsn != "" {
		u, err := url.Parse(dsn)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return fmt.Errorf("DATABASE_URL must be a postgres:// URL, got %q", redact(dsn))
		}
		server.base = u
		server.template = "pgtest_" + randomHex(6)
	} else {
		c, err := pgcluster.Start(ctx, pgcluster.DefaultConfig())
		if err != nil {
			return err
		}
		server.cluster = c
		server.base, err = url.Parse(c.URL("postgres"))
		if err != nil {
			return err
		}
		server.template = "pgtest_template"
	}

	if err := createDatabase(ctx, server.template, ""); err != nil {
		server.template = "" // nothing to drop
		return err
	}
	conn, err := pgx.Connect(ctx, dbURL(server.template))
	if err != nil {
		return fmt.Errorf("connect to template: %w", err)
	}
	err = postgres.Migrate(ctx, conn)
	// Closed before any CREATE DATABASE ... TEMPLATE: it needs the template idle.
	conn.Close(ctx)
	return err
}

func teardown() error {
	if server.cluster != nil {
		return server.cluster.Stop()
	}
	if server.template != "" && server.base != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return dropDatabase(ctx, server.template)
	}
	return nil
}

// Cluster returns the ephemeral cluster Main started, or nil when the tests
// use DATABASE_URL's server (or Main was not called).
func Cluster() *pgcluster.Cluster {
	return server.cluster
}

// NewDB creates a fresh database with the current schema, and returns its
// URL. The database is dropped when the test ends, with WITH (FORCE): sessions
// still connected to it are terminated, so close pools first (in a Cleanup
// registered after NewDB's, as MustOpenDB does) to keep them from logging
// errors.
func NewDB(tb testing.TB) string {
	tb.Helper()
	return newDB(tb, server.template)
}

// NewEmptyDB is NewDB without the schema: a copy of template1, for tests of
// migrations.
func NewEmptyDB(tb testing.TB) string {
	tb.Helper()
	return newDB(tb, "")
}

func newDB(tb testing.TB, template string) string {
	tb.Helper()
	if !server.started || server.base == nil {
		tb.Fatal("pgtest: no server: call pgtest.Main(m) from TestMain")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := dbName(tb.Name())
	if err := createDatabase(ctx, name, template); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := dropDatabase(ctx, name); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	return dbURL(name)
}

// MustOpenDB returns a pool on a fresh database with the current schema
// (NewDB), closed when the test ends before the database is dropped.
func MustOpenDB(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	u := NewDB(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, u)
	if err != nil {
		tb.Fatalf("pgtest: open %s: %v", redact(u), err)
	}
	tb.Cleanup(pool.Close)
	if err := pool.Ping(ctx); err != nil {
		tb.Fatalf("pgtest: ping %s: %v", redact(u), err)
	}
	return pool
}

// dbURL returns the server's URL with database name.
func dbURL(name string) string {
	u := *server.base
	u.Path, u.RawPath = "/"+name, ""
	return u.String()
}

func createDatabase(ctx context.Context, name, template string) error {
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if err := adminExec(ctx, sql); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

func dropDatabase(ctx context.Context, name string) error {
	if err := adminExec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// adminExec runs sql on a new connection to the database in the server URL
// (the cluster's "postgres", or DATABASE_URL's).
func adminExec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, server.base.String())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// dbName returns a new database name: "t_", the test's name in lowercase
// [a-z0-9_] (for finding a leftover database's test), and a random suffix,
// within PostgreSQL's 63-byte limit.
func dbName(testName string) string {
	var b strings.Builder
	b.WriteString("t_")
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= 40 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	b.WriteByte('_')
	b.WriteString(randomHex(6))
	return b.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// redact hides a password in a URL for messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
