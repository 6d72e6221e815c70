package jobs

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Admission's phases, as the metric labels them.
const (
	PhaseCheck    = "check"    // policy, quote, matching (mostly in memory)
	PhaseRecord   = "record"   // the admission record
	PhaseHold     = "hold"     // the ledger hold, durable
	PhaseRegister = "register" // Nomad's answer to the registration
)

// Metrics are admission's phase timings: where a submission's time goes
// before Nomad answers it. A nil *Metrics records nothing.
type Metrics struct {
	Phases *prometheus.HistogramVec
}

// NewMetrics registers admission's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{Phases: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "spiceroute", Subsystem: "admission", Name: "phase_duration_seconds",
		Help:    `Time a successful job submission spent in each phase of admission ("check", "record", "hold", "register").`,
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"phase"})}
	reg.MustRegister(m.Phases)
	return m
}

// Observed returns, per phase, how many submissions were timed and their
// total time.
func (m *Metrics) Observed() (map[string]uint64, map[string]time.Duration, error) {
	counts, sums := map[string]uint64{}, map[string]time.Duration{}
	for _, name := range phaseNames {
		var d dto.Metric
		if err := m.Phases.WithLabelValues(name).(prometheus.Metric).Write(&d); err != nil {
			return nil, nil, err
		}
		counts[name] = d.GetHistogram().GetSampleCount()
		sums[name] = time.Duration(d.GetHistogram().GetSampleSum() * float64(time.Second))
	}
	return counts, sums, nil
}

// Indexes of the phases in phases.took.
const (
	phCheck = iota
	phRecord
	phHold
	phRegister
)

var phaseNames = [...]string{phCheck: PhaseCheck, phRecord: PhaseRecord, phHold: PhaseHold, phRegister: PhaseRegister}

// phases times one submission's phases; each mark ends the current one.
type phases struct {
	m    *Metrics
	last time.Time
	took [4]time.Duration
}

func (m *Metrics) start() *phases { return &phases{m: m, last: time.Now()} }

func (p *phases) mark(i int) {
	now := time.Now()
	p.took[i] += now.Sub(p.last)
	p.last = now
}

// done records a successful submission's phases.
func (p *phases) done() {
	if p.m == nil {
		return
	}
	for i, name := range phaseNames {
		p.m.Phases.WithLabelValues(name).Observe(p.took[i].Seconds())
	}
}
