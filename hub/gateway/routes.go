package gateway

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// kind is what a by-ID path parameter names. Nomad looks these up by ID
// whatever namespace the request asks for, so the gateway checks the owner.
// (Jobs need no check: Nomad looks them up by namespace and ID.)
type kind string

const (
	kindAlloc      kind = "allocation"
	kindEval       kind = "evaluation"
	kindDeployment kind = "deployment"
)

// lookup is the Nomad path that reads one object of a kind, to learn its
// namespace.
func (k kind) lookup(id string) string {
	switch k {
	case kindAlloc:
		return "/v1/allocation/" + id
	case kindEval:
		return "/v1/evaluation/" + id
	case kindDeployment:
		return "/v1/deployment/" + id
	}
	panic("gateway: no lookup for " + string(k))
}

// call is one allowed request: who makes it and what it addresses.
type call struct {
	renter string
	ns     string    // the renter's Nomad namespace
	path   string    // the escaped path to forward, rebuilt from the parsed parts
	job    string    // the job ID of /v1/job/:job routes
	ids    []idParam // by-ID objects whose owner is checked before forwarding
}

type idParam struct {
	kind kind
	id   string
}

type handler func(g *Gateway, w http.ResponseWriter, r *http.Request, c *call)

// route is one allowlisted method set and path pattern. In patterns, :alloc,
// :eval and :deployment match one full UUID path segment; :job matches a job
// ID the way Nomad's agent splits /v1/job/ paths (splitJobPath).
type route struct {
	methods []string
	pattern string
	serve   handler
}

var (
	get   = []string{http.MethodGet}
	write = []string{http.MethodPut, http.MethodPost}
	del   = []string{http.MethodDelete}
)

// routes is the allowlist (see the package documentation for why each).
var routes = []route{
	{get, "/v1/jobs", (*Gateway).forward},
	{write, "/v1/jobs", (*Gateway).register},
	{write, "/v1/jobs/parse", (*Gateway).forward},

	{get, "/v1/job/:job", (*Gateway).forward},
	{write, "/v1/job/:job", (*Gateway).register},
	{del, "/v1/job/:job", (*Gateway).forward},
	{write, "/v1/job/:job/plan", (*Gateway).plan},
	{get, "/v1/job/:job/allocations", (*Gateway).forward},
	{get, "/v1/job/:job/evaluations", (*Gateway).forward},
	{get, "/v1/job/:job/deployment", (*Gateway).forward},
	{get, "/v1/job/:job/deployments", (*Gateway).forward},
	{get, "/v1/job/:job/summary", (*Gateway).forward},
	{get, "/v1/job/:job/versions", (*Gateway).forward},
	{get, "/v1/job/:job/submission", (*Gateway).forward},

	{get, "/v1/allocations", (*Gateway).forward},
	{get, "/v1/allocation/:alloc", (*Gateway).forward},
	{get, "/v1/evaluations", (*Gateway).forward},
	{get, "/v1/evaluation/:eval", (*Gateway).forward},
	{get, "/v1/evaluation/:eval/allocations", (*Gateway).forward},
	{get, "/v1/deployments", (*Gateway).forward},
	{get, "/v1/deployment/:deployment", (*Gateway).forward},
	{get, "/v1/deployment/allocations/:deployment", (*Gateway).forward},

	// Only the task's logs: fs ls/stat/cat/readat/stream would let a
	// renter browse the whole task directory, chroot included, on the
	// contributor's machine.
	{get, "/v1/client/fs/logs/:alloc", (*Gateway).forward},
	{get, "/v1/client/allocation/:alloc/stats", (*Gateway).forward},
	{get, "/v1/client/allocation/:alloc/checks", (*Gateway).forward},

	{write, "/v1/search", (*Gateway).search},
}

var params = map[string]kind{":alloc": kindAlloc, ":eval": kindEval, ":deployment": kindDeployment}

// match finds the route for a request, or nil.
func match(method, p string) (*call, *route) {
	for i := range routes {
		rt := &routes[i]
		if !slices.Contains(rt.methods, method) {
			continue
		}
		if c, ok := rt.match(p); ok {
			return c, rt
		}
	}
	return nil, nil
}

func (rt *route) match(p string) (*call, bool) {
	if rest, ok := strings.CutPrefix(rt.pattern, "/v1/job/:job"); ok {
		id, suffix, ok := splitJobPath(p)
		if !ok || suffix != rest {
			return nil, false
		}
		return &call{job: id, path: "/v1/job/" + url.PathEscape(id) + suffix}, true
	}
	want, got := strings.Split(rt.pattern, "/"), strings.Split(p, "/")
	if len(want) != len(got) {
		return nil, false
	}
	c := &call{}
	for i, w := range want {
		if k, ok := params[w]; ok {
			if !isUUID(got[i]) {
				return nil, false
			}
			c.ids = append(c.ids, idParam{k, got[i]})
		} else if w != got[i] {
			return nil, false
		}
	}
	c.path = p // literal segments and UUIDs: nothing to escape
	return c, true
}

// jobSuffixes are the sub-resources of /v1/job/<id>, in the order Nomad's
// agent tries them (command/agent/job_endpoint.go, JobSpecificRequest): the
// first suffix the unescaped path ends with wins, and the job ID is the
// rest. "/tag" has its own shape and is never allowed.
var jobSuffixes = []string{
	"/evaluate", "/allocations", "/evaluations", "/periodic/force", "/plan", "/summary",
	"/dispatch", "/dispatch/payload", "/versions", "/revert", "/deployments", "/deployment",
	"/stable", "/scale", "/services", "/submission", "/actions", "/action", "/tag",
}

// splitJobPath splits an unescaped /v1/job/ path into job ID and suffix as
// Nomad does. ok is false for other paths and for an empty job ID.
func splitJobPath(p string) (id, suffix string, ok bool) {
	rest, found := strings.CutPrefix(p, "/v1/job/")
	if !found {
		return "", "", false
	}
	for _, s := range jobSuffixes {
		if strings.HasSuffix(rest, s) {
			id, suffix = strings.TrimSuffix(rest, s), s
			break
		}
	}
	if suffix == "" {
		id = rest
	}
	return id, suffix, id != ""
}

// isUUID reports whether s is a UUID as Nomad writes them
// (8-4-4-4-12 hexadecimal digits).
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
				return false
			}
		}
	}
	return true
}
