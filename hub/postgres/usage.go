package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/spiceroute/spiceroute/hub/admission"
	"github.com/spiceroute/spiceroute/hub/jobs"
)

// UsageCacheTTL is how long RenterUsage trusts the open admissions it read
// of a renter. Admissions recorded or ended through this store count, or
// stop counting, at once; those recorded or ended through another hub
// replica sharing the database do within UsageCacheTTL (an ended one
// counting a moment longer errs on the safe side).
const UsageCacheTTL = time.Second

// renterUsage is what a renter's open admissions hold: per job as last read
// from the database, and the admissions this store recorded since.
type renterUsage struct {
	mu    sync.Mutex
	read  time.Time // when jobs was read (zero: never)
	jobs  map[string]admission.Usage
	total admission.Usage // the sum of jobs, Jobs counting them
	// recent are admissions recorded through this store, kept until a read
	// that started after they were recorded includes them; recentByJob
	// sums them per job and recentSum in all, and extra counts their jobs
	// that jobs does not have.
	recent      []recentAdmission
	recentByJob map[string]admission.Usage
	recentSum   admission.Usage
	extra       int
	// reading is closed when the read in progress ends (nil: none).
	reading chan struct{}
	// forgot is when an admission of the renter last ended: a read that
	// started before it may count that admission.
	forgot time.Time
}

type recentAdmission struct {
	job string
	use admission.Usage
	at  time.Time // after its insert committed
}

func (s *Store) usageOf(renter string) *renterUsage {
	if u, ok := s.usage.Load(renter); ok {
		return u.(*renterUsage)
	}
	u, _ := s.usage.LoadOrStore(renter, &renterUsage{})
	return u.(*renterUsage)
}

// RenterUsage sums what a renter's open admissions hold, those of job
// exclude excepted. It reads the database at most once per UsageCacheTTL
// per renter: counting a renter's open admissions is a scan of all of them,
// which on every submission would cost more than the rest of admission.
func (s *Store) RenterUsage(ctx context.Context, renter, exclude string) (admission.Usage, error) {
	u := s.usageOf(renter)
	for {
		u.mu.Lock()
		if !u.read.IsZero() && time.Since(u.read) < UsageCacheTTL {
			defer u.mu.Unlock()
			return u.sum(exclude), nil
		}
		if wait := u.reading; wait != nil { // one read at a time per renter
			u.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return admission.Usage{}, ctx.Err()
			}
		}
		done := make(chan struct{})
		u.reading = done
		u.mu.Unlock()

		start := time.Now()
		jobs, err := s.readUsage(ctx, renter)
		u.mu.Lock()
		u.reading = nil
		close(done)
		if err != nil {
			u.mu.Unlock()
			return admission.Usage{}, err
		}
		u.jobs, u.total = jobs, admission.Usage{Jobs: len(jobs)}
		if !u.forgot.Before(start) {
			u.read = time.Time{} // an admission ended meanwhile: read again
		} else {
			u.read = start
		}
		for _, j := range jobs {
			u.total.CPUMHz += j.CPUMHz
			u.total.MemoryMB += j.MemoryMB
		}
		// An admission recorded before the read started is in it.
		recent := u.recent
		u.recent, u.recentByJob, u.recentSum, u.extra = nil, nil, admission.Usage{}, 0
		for _, r := range recent {
			if !r.at.Before(start) {
				u.addRecent(r)
			}
		}
		u.mu.Unlock()
	}
}

// sum is the usage of every open admission but job exclude's; u.mu held.
func (u *renterUsage) sum(exclude string) admission.Usage {
	t := u.total
	t.Jobs += u.extra
	t.CPUMHz += u.recentSum.CPUMHz
	t.MemoryMB += u.recentSum.MemoryMB
	j, read := u.jobs[exclude]
	r, recent := u.recentByJob[exclude]
	if read || recent {
		t.Jobs--
		t.CPUMHz -= j.CPUMHz + r.CPUMHz
		t.MemoryMB -= j.MemoryMB + r.MemoryMB
	}
	return t
}

// addRecent counts r; u.mu held.
func (u *renterUsage) addRecent(r recentAdmission) {
	u.recent = append(u.recent, r)
	if u.recentByJob == nil {
		u.recentByJob = map[string]admission.Usage{}
	}
	j, ok := u.recentByJob[r.job]
	if _, read := u.jobs[r.job]; !ok && !read {
		u.extra++
	}
	j.CPUMHz += r.use.CPUMHz
	j.MemoryMB += r.use.MemoryMB
	u.recentByJob[r.job] = j
	u.recentSum.CPUMHz += r.use.CPUMHz
	u.recentSum.MemoryMB += r.use.MemoryMB
}

// recorded counts an admission this store has just inserted.
func (s *Store) recorded(r *jobs.Record) {
	u := s.usageOf(r.Renter)
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.read.IsZero() {
		return // never read: the first read will include it
	}
	res := r.Quote.Resources
	u.addRecent(recentAdmission{job: r.JobID, at: time.Now(),
		use: admission.Usage{CPUMHz: int(res.CPUMHz), MemoryMB: int(res.MemoryMB)}})
}

// readUsage reads what each of a renter's jobs' open admissions hold.
func (s *Store) readUsage(ctx context.Context, renter string) (map[string]admission.Usage, error) {
	rows, err := s.pool.Query(ctx, `SELECT job_id,
		coalesce(sum((quote->'resources'->>'cpu_mhz')::bigint), 0), coalesce(sum((quote->'resources'->>'memory_mb')::bigint), 0)
		FROM job_admissions WHERE renter = $1 AND state IN ('admitted', 'running') GROUP BY job_id`, renter)
	if err != nil {
		return nil, fmt.Errorf("postgres: usage of %s: %w", renter, err)
	}
	defer rows.Close()
	out := map[string]admission.Usage{}
	for rows.Next() {
		var job string
		var cpu, mem int64
		if err := rows.Scan(&job, &cpu, &mem); err != nil {
			return nil, fmt.Errorf("postgres: usage of %s: %w", renter, err)
		}
		out[job] = admission.Usage{CPUMHz: int(cpu), MemoryMB: int(mem)}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: usage of %s: %w", renter, err)
	}
	return out, nil
}

// forgetUsage makes the next RenterUsage of renter read the database: one
// of its admissions has ended.
func (s *Store) forgetUsage(renter string) {
	u := s.usageOf(renter)
	u.mu.Lock()
	u.read, u.forgot = time.Time{}, time.Now()
	u.mu.Unlock()
}
