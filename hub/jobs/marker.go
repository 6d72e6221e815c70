package jobs

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// marker records admissions as running once their jobs are registered,
// off the submission's path and many per statement: a submission answers
// as soon as Nomad has the job. An admission whose mark is lost (the hub
// stopped first, or the write failed) is still admitted; the settlement
// tick finds its job in Nomad and marks it then.
type marker struct {
	mu       sync.Mutex
	pending  []string
	flushing bool
}

// markDelay is how long a flush waits for more keys before writing: one
// statement for many admissions costs about what one for a single
// admission does.
const markDelay = 20 * time.Millisecond

// markTimeout bounds one batch's write.
const markTimeout = 30 * time.Second

// mark queues key; a flush is started unless one is running, which takes
// key with its next batch.
func (m *marker) mark(key string, write func(context.Context, []string) error, log *slog.Logger) {
	m.mu.Lock()
	m.pending = append(m.pending, key)
	if m.flushing {
		m.mu.Unlock()
		return
	}
	m.flushing = true
	m.mu.Unlock()
	go m.flush(write, log)
}

func (m *marker) flush(write func(context.Context, []string) error, log *slog.Logger) {
	for {
		time.Sleep(markDelay)
		m.mu.Lock()
		batch := m.pending
		m.pending = nil
		if len(batch) == 0 {
			m.flushing = false
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), markTimeout)
		if err := write(ctx, batch); err != nil {
			log.Warn("jobs: marking admissions running failed; the settlement tick marks them", "admissions", len(batch), "err", err)
		}
		cancel()
	}
}
