// Package nomad is the hub's side of HashiCorp Nomad (nomad/api): each
// renter gets its own Nomad namespace, renters' jobs are pinned to the
// hub's node pool (the contributors' machines), and the hub talks to Nomad
// with its own token, never handing Nomad tokens to renters.
package nomad

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/coded"
)

// Config configures the hub's Nomad connection.
type Config struct {
	Address string // Nomad's HTTP API, e.g. http://127.0.0.1:4646
	Token   string // the hub's Nomad ACL token
	// NodePool holds the contributors' machines; renters' jobs run only
	// there (default "spiceroute").
	NodePool string
	// NamespacePrefix prefixes renters' namespaces (default "renter-").
	NamespacePrefix string
}

// DefaultNodePool is where contributors' machines join by default.
const DefaultNodePool = "spiceroute"

// Scheduler submits and follows renters' jobs. Safe for concurrent use.
type Scheduler struct {
	cfg Config
	c   *api.Client
	// namespaces holds the renters whose namespace exists (the hub never
	// deletes one), so that only a renter's first job writes to Nomad.
	namespaces sync.Map
	// nodes caches the pricing meta of the pool's nodes (Sample).
	nodes nodeCache
	// offers is the last reading of the machines' offers (Offers).
	offers offersCache
	// stream reads Nomad's event stream (watch.go).
	stream *http.Client
}

// New connects to Nomad. It does not read NOMAD_* environment variables:
// only the hub's main does.
func New(cfg Config) (*Scheduler, error) {
	if cfg.NodePool == "" {
		cfg.NodePool = DefaultNodePool
	}
	if cfg.NamespacePrefix == "" {
		cfg.NamespacePrefix = "renter-"
	}
	// The API client's default pool keeps GOMAXPROCS+1 idle connections:
	// a hub admitting many jobs at once would reconnect for most requests.
	tr := cleanhttp.DefaultPooledTransport()
	tr.MaxIdleConnsPerHost = 256
	// Uncompressed: through gzip, Nomad's event stream may hold events and
	// heartbeats back in the compressor's buffer (the watch reads the
	// stream itself, without asking for gzip; nomad/api always asks).
	tr.DisableCompression = true
	c, err := api.NewClient(&api.Config{Address: cfg.Address, SecretID: cfg.Token, HttpClient: &http.Client{Transport: identity{tr}}})
	if err != nil {
		return nil, fmt.Errorf("nomad: %w", err)
	}
	return &Scheduler{cfg: cfg, c: c, stream: &http.Client{Transport: tr}}, nil
}

// identity asks Nomad for uncompressed responses. nomad/api asks for gzip
// on every request whatever the transport says, and Nomad then builds a
// gzip writer per response: about a third of its CPU per job registration
// in a profile of the jobs benchmark (compress/flate and the clearing of
// the compressor's buffers), to save bytes on the hub's own link to it.
type identity struct{ http.RoundTripper }

// Uncompressed wraps rt (an http.Transport with DisableCompression set) to
// ask Nomad for uncompressed responses, as the hub's own client does (the
// jobs benchmark's direct client uses it, so that Nomad directly is
// measured at its best).
func Uncompressed(rt http.RoundTripper) http.RoundTripper { return identity{rt} }

func (t identity) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Accept-Encoding") != "" {
		r = r.Clone(r.Context())
		r.Header.Del("Accept-Encoding")
	}
	return t.RoundTripper.RoundTrip(r)
}

// Namespace is the renter's Nomad namespace.
func (s *Scheduler) Namespace(renter string) string { return s.cfg.NamespacePrefix + renter }

// NodePool is the pool renters' jobs are pinned to.
func (s *Scheduler) NodePool() string { return s.cfg.NodePool }

func (s *Scheduler) write(ctx context.Context, ns string) *api.WriteOptions {
	return (&api.WriteOptions{Namespace: ns}).WithContext(ctx)
}

func (s *Scheduler) query(ctx context.Context, ns string) *api.QueryOptions {
	return (&api.QueryOptions{Namespace: ns}).WithContext(ctx)
}

// EnsureNodePool creates the hub's node pool if it does not exist.
func (s *Scheduler) EnsureNodePool(ctx context.Context) error {
	_, err := s.c.NodePools().Register(&api.NodePool{Name: s.cfg.NodePool, Description: "SpiceRoute contributors' machines"}, s.write(ctx, ""))
	if err != nil {
		return fmt.Errorf("nomad: node pool %s: %w", s.cfg.NodePool, err)
	}
	return nil
}

// EnsureRenter creates the renter's namespace if it does not exist.
func (s *Scheduler) EnsureRenter(ctx context.Context, renter string) error {
	if err := auth.ValidName(renter); err != nil {
		return fmt.Errorf("nomad: renter: %w", err)
	}
	if _, ok := s.namespaces.Load(renter); ok {
		return nil
	}
	ns := s.Namespace(renter)
	_, err := s.c.Namespaces().Register(&api.Namespace{Name: ns, Description: "SpiceRoute renter " + renter,
		Meta: map[string]string{"spiceroute.renter": renter}}, s.write(ctx, ""))
	if err != nil {
		return fmt.Errorf("nomad: namespace %s: %w", ns, err)
	}
	s.namespaces.Store(renter, true)
	return nil
}

// Prepare canonicalizes a renter's job and places it: the renter's
// namespace and the hub's node pool, whatever the job said. A job Nomad's
// canonicalization cannot walk (a null task group or task in its JSON, for
// one) is refused as malformed.
func (s *Scheduler) Prepare(renter string, j *api.Job) error {
	if err := Canonicalize(j); err != nil {
		return err
	}
	ns := s.Namespace(renter)
	j.Namespace = &ns
	pool := s.cfg.NodePool
	j.NodePool = &pool
	return nil
}

// Copy returns a deep copy of j (through its JSON, the form Nomad reads).
func Copy(j *api.Job) (*api.Job, error) {
	b, err := json.Marshal(j)
	if err != nil {
		return nil, coded.Errorf(CodeMalformed, "the job cannot be encoded: %v", err)
	}
	var c api.Job
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, coded.Errorf(CodeMalformed, "the job cannot be decoded: %v", err)
	}
	return &c, nil
}

// CodeMalformed refuses a job whose structure Nomad's client library
// cannot process.
const CodeMalformed coded.Code = "invalid"

// Canonicalize fills in Nomad's defaults (j.Canonicalize), refusing a job
// the library panics on instead of failing the request: nomad/api assumes
// well-formed jobs, and a renter's JSON need not be.
func Canonicalize(j *api.Job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = coded.Errorf(CodeMalformed, "the job is malformed (%v): check for null task groups, tasks or other null list entries", r)
		}
	}()
	j.Canonicalize()
	return nil
}

// Register registers a prepared job in the renter's namespace.
func (s *Scheduler) Register(ctx context.Context, renter string, j *api.Job) (*api.JobRegisterResponse, error) {
	if j.Namespace == nil || *j.Namespace != s.Namespace(renter) || j.NodePool == nil || *j.NodePool != s.cfg.NodePool {
		return nil, fmt.Errorf("nomad: job %s was not prepared for renter %s", str(j.ID), renter)
	}
	resp, _, err := s.c.Jobs().Register(j, s.write(ctx, s.Namespace(renter)))
	if err != nil {
		return nil, fmt.Errorf("nomad: register %s/%s: %w", renter, str(j.ID), err)
	}
	return resp, nil
}

// Job returns a renter's job.
func (s *Scheduler) Job(ctx context.Context, renter, id string) (*api.Job, error) {
	j, _, err := s.c.Jobs().Info(id, s.query(ctx, s.Namespace(renter)))
	if err != nil {
		return nil, fmt.Errorf("nomad: job %s/%s: %w", renter, id, err)
	}
	return j, nil
}

// Jobs lists a renter's jobs.
func (s *Scheduler) Jobs(ctx context.Context, renter string) ([]*api.JobListStub, error) {
	js, _, err := s.c.Jobs().List(s.query(ctx, s.Namespace(renter)))
	if err != nil {
		return nil, fmt.Errorf("nomad: jobs of %s: %w", renter, err)
	}
	return js, nil
}

// Allocations lists a renter's job's allocations.
func (s *Scheduler) Allocations(ctx context.Context, renter, id string) ([]*api.AllocationListStub, error) {
	as, _, err := s.c.Jobs().Allocations(id, true, s.query(ctx, s.Namespace(renter)))
	if err != nil {
		return nil, fmt.Errorf("nomad: allocations of %s/%s: %w", renter, id, err)
	}
	return as, nil
}

// Stop deregisters a renter's job (purge removes it from Nomad's state).
func (s *Scheduler) Stop(ctx context.Context, renter, id string, purge bool) error {
	_, _, err := s.c.Jobs().Deregister(id, purge, s.write(ctx, s.Namespace(renter)))
	if err != nil {
		return fmt.Errorf("nomad: stop %s/%s: %w", renter, id, err)
	}
	return nil
}

// Logs returns the stdout (or stderr) a renter's task wrote, up to limit bytes.
func (s *Scheduler) Logs(ctx context.Context, renter, allocID, task, stream string, limit int) (string, error) {
	return s.logs(ctx, s.Namespace(renter), allocID, task, stream, limit)
}

// logs returns what a task of an allocation in namespace ns wrote to stream.
func (s *Scheduler) logs(ctx context.Context, ns, allocID, task, stream string, limit int) (string, error) {
	alloc, _, err := s.c.Allocations().Info(allocID, s.query(ctx, ns))
	if err != nil {
		return "", fmt.Errorf("nomad: alloc %s: %w", allocID, err)
	}
	frames, errs := s.c.AllocFS().Logs(alloc, false, task, stream, "start", 0, ctx.Done(), s.query(ctx, ns))
	var b strings.Builder
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				return b.String(), nil
			}
			if f != nil {
				b.Write(f.Data)
				if limit > 0 && b.Len() >= limit {
					return b.String()[:limit], nil
				}
			}
		case err := <-errs:
			if err != nil {
				return b.String(), fmt.Errorf("nomad: logs of %s/%s: %w", allocID, task, err)
			}
		case <-ctx.Done():
			return b.String(), ctx.Err()
		}
	}
}

// ParseHCL asks Nomad to parse a jobspec (HCL2), as `nomad job run` does.
func (s *Scheduler) ParseHCL(ctx context.Context, hcl string) (*api.Job, error) {
	j, err := s.c.Jobs().ParseHCLOpts(&api.JobsParseRequest{JobHCL: hcl, Canonicalize: true})
	if err != nil {
		return nil, fmt.Errorf("nomad: parse jobspec: %w", err)
	}
	return j, nil
}

// Plan asks Nomad for a dry-run plan of a prepared job.
func (s *Scheduler) Plan(ctx context.Context, renter string, j *api.Job, diff bool) (*api.JobPlanResponse, error) {
	if j.Namespace == nil || *j.Namespace != s.Namespace(renter) {
		return nil, fmt.Errorf("nomad: job %s was not prepared for renter %s", str(j.ID), renter)
	}
	resp, _, err := s.c.Jobs().Plan(j, diff, s.write(ctx, s.Namespace(renter)))
	if err != nil {
		return nil, fmt.Errorf("nomad: plan %s/%s: %w", renter, str(j.ID), err)
	}
	return resp, nil
}
