package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/hub/admission"
	"github.com/spiceroute/spiceroute/hub/jobs"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
	"github.com/spiceroute/spiceroute/hub/postgres"
	"github.com/spiceroute/spiceroute/hub/postgres/pgtest"
)

// A renter's usage (what the per-renter caps count) is read from the
// database at most once a second, yet admissions recorded through the
// store count at once, an admission that ends stops counting at once, and
// one recorded by another hub replica counts within UsageCacheTTL.
func TestRenterUsage(t *testing.T) {
	ctx := context.Background()
	db := pgtest.MustOpenDB(t)
	st, other := postgres.New(db), postgres.New(db) // other: a second hub replica
	account := ledger.NewID()
	admit := func(s *postgres.Store, key, job string, cpu, mem int64) {
		t.Helper()
		q := market.Quote{Resources: market.Resources{CPUMHz: cpu, MemoryMB: mem}, Max: 1}
		if _, err := s.InsertAdmission(ctx, &jobs.Record{Key: key, Base: key, Renter: "alice", JobID: job, Account: account, Quote: q, State: jobs.Admitted}); err != nil {
			t.Fatal(err)
		}
	}
	usage := func(exclude string) admission.Usage {
		t.Helper()
		u, err := st.RenterUsage(ctx, "alice", exclude)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	want := func(exclude string, w admission.Usage) {
		t.Helper()
		if u := usage(exclude); u != w {
			t.Fatalf("alice's usage (without job %q) is %+v, want %+v", exclude, u, w)
		}
	}

	admit(st, "k1", "a", 1000, 512)
	want("", admission.Usage{Jobs: 1, CPUMHz: 1000, MemoryMB: 512}) // read from the database
	admit(st, "k2", "b", 500, 256)
	admit(st, "k3", "b", 500, 256) // a second admission of job b: still two jobs
	want("", admission.Usage{Jobs: 2, CPUMHz: 2000, MemoryMB: 1024})
	want("a", admission.Usage{Jobs: 1, CPUMHz: 1000, MemoryMB: 512})
	want("b", admission.Usage{Jobs: 1, CPUMHz: 1000, MemoryMB: 512})

	// An ended admission frees its share at once.
	if err := st.SetAdmissionState(ctx, "k1", jobs.Settled, ""); err != nil {
		t.Fatal(err)
	}
	want("", admission.Usage{Jobs: 1, CPUMHz: 1000, MemoryMB: 512})

	// Another replica's admission counts once the cached reading expires.
	admit(other, "k4", "c", 250, 128)
	deadline := time.Now().Add(30 * time.Second)
	for usage("").Jobs != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("another replica's admission never counted: %+v", usage(""))
		}
		time.Sleep(postgres.UsageCacheTTL / 4)
	}
	want("", admission.Usage{Jobs: 2, CPUMHz: 1250, MemoryMB: 640})
}
