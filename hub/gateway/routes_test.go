package gateway

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The gateway and Nomad agree on what a request addresses: the path
// forwarded for a matched request decodes, as Nomad's agent decodes it, to
// the very path the gateway matched on, and by-ID parameters are UUIDs.
func FuzzMatch(f *testing.F) {
	for _, s := range []struct{ method, path string }{
		{"GET", "/v1/jobs"},
		{"PUT", "/v1/jobs"},
		{"GET", "/v1/job/hello"},
		{"GET", "/v1/job/a/b/allocations"},
		{"PUT", "/v1/job/plan"},
		{"PUT", "/v1/job/x/plan"},
		{"PUT", "/v1/job//plan"},
		{"DELETE", "/v1/job/x%/y?z#"},
		{"GET", "/v1/job/x/../../nodes"},
		{"GET", "/v1/allocation/5929f100-08bf-171a-dd5d-ebde28dba078"},
		{"GET", "/v1/client/fs/logs/5929f100-08bf-171a-dd5d-ebde28dba078"},
		{"GET", "/v1/deployment/allocations/5929f100-08bf-171a-dd5d-ebde28dba078"},
		{"GET", "/v1/evaluation/5929f100-08bf-171a-dd5d-ebde28dba078/allocations"},
		{"PUT", "/v1/search"},
	} {
		f.Add(s.method, s.path)
	}
	f.Fuzz(func(t *testing.T, method, p string) {
		c, rt := match(method, p)
		if rt == nil {
			return
		}
		u, err := url.Parse(c.path)
		if err != nil {
			t.Fatalf("%s %q forwards to %q, which does not parse: %v", method, p, c.path, err)
		}
		if u.Path != p || u.RawQuery != "" || u.Fragment != "" {
			t.Fatalf("%s %q forwards to %q, which Nomad reads as path %q query %q", method, p, c.path, u.Path, u.RawQuery)
		}
		if strings.HasPrefix(rt.pattern, "/v1/job/:job") {
			id, suffix, ok := splitJobPath(u.Path)
			if !ok || id != c.job || rt.pattern != "/v1/job/:job"+suffix {
				t.Fatalf("%q: the gateway sees job %q, Nomad job %q suffix %q", p, c.job, id, suffix)
			}
		}
		for _, id := range c.ids {
			if !isUUID(id.id) {
				t.Fatalf("%q: by-ID parameter %q is not a UUID", p, id.id)
			}
		}
	})
}

func TestMatch(t *testing.T) {
	tests := []struct {
		method, path string
		pattern      string // "" for refused
		job          string
	}{
		{"GET", "/v1/job/a/b/allocations", "/v1/job/:job/allocations", "a/b"},
		{"PUT", "/v1/job/plan", "/v1/job/:job", "plan"},
		{"PUT", "/v1/job/x/plan", "/v1/job/:job/plan", "x"},
		{"GET", "/v1/job/x/plan", "", ""},
		{"PUT", "/v1/job//plan", "", ""},
		{"PUT", "/v1/job/x/scale", "", ""},
		{"GET", "/v1/job/x/scale", "", ""},
		{"PUT", "/v1/job/x/dispatch/payload", "", ""},
		{"GET", "/v1/job/x/tag/v1/tag", "", ""},
		{"GET", "/v1/allocation/5929f100-08bf-171a-dd5d-ebde28dba078/stop", "", ""},
		{"GET", "/v1/allocation/5929f100", "", ""},
		{"GET", "/v1/client/allocation/5929f100-08bf-171a-dd5d-ebde28dba078/exec", "", ""},
		{"GET", "/v1/node/5929f100-08bf-171a-dd5d-ebde28dba078", "", ""},
		{"DELETE", "/v1/allocations", "", ""},
	}
	for _, tt := range tests {
		c, rt := match(tt.method, tt.path)
		got := ""
		if rt != nil {
			got = rt.pattern
		}
		if got != tt.pattern || rt != nil && c.job != tt.job {
			t.Errorf("%s %s: route %q job %v, want %q job %q", tt.method, tt.path, got, c, tt.pattern, tt.job)
		}
	}
	if _, rt := match(http.MethodHead, "/v1/jobs"); rt != nil {
		t.Error("HEAD /v1/jobs is allowed")
	}
}
