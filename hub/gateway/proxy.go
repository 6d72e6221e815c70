package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// forward sends an allowlisted request to Nomad, changed as the package
// documentation says.
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, c *call) {
	var body []byte
	if r.Method == http.MethodPut || r.Method == http.MethodPost {
		var ok bool
		if body, ok = g.readBody(w, r); !ok {
			return
		}
	}
	g.send(w, r, c, body)
}

// send checks the owner of every object the call addresses by ID, then
// proxies the call to Nomad with body (nil: none).
func (g *Gateway) send(w http.ResponseWriter, r *http.Request, c *call, body []byte) {
	region := r.URL.Query().Get("region")
	for _, p := range c.ids {
		ns, err := g.namespaceOf(r.Context(), p, region)
		if errors.Is(err, errNotFound) || (err == nil && ns != c.ns) {
			// The same answer for another renter's object as for none.
			g.text(w, http.StatusNotFound, fmt.Sprintf("%s %s not found", p.kind, p.id))
			return
		}
		if err != nil {
			g.fail(w, r, err)
			return
		}
	}
	u, err := url.Parse(g.nomad + c.path)
	if err != nil {
		g.fail(w, r, fmt.Errorf("gateway: forward %s: %w", c.path, err))
		return
	}
	u.RawQuery = g.query(r.URL.Query(), c.ns).Encode()
	out := r.Clone(r.Context())
	out.URL, out.Host, out.RequestURI = u, u.Host, ""
	out.Body, out.ContentLength = http.NoBody, 0
	if body != nil {
		out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	}
	g.proxy.ServeHTTP(w, out)
}

// query is the query string Nomad gets: the renter's, with the namespace
// forced to the renter's and a blocking query's wait capped at MaxWait.
// (Nomad reads the first value of each parameter; Set leaves one.)
func (g *Gateway) query(in url.Values, ns string) url.Values {
	q := url.Values{}
	for k, v := range in {
		q[k] = slices.Clone(v)
	}
	q.Set("namespace", ns)
	if q.Has("index") || q.Has("wait") {
		// Nomad waits 5 minutes when a blocking query has no wait, longer
		// than the hub's request timeout.
		d, err := time.ParseDuration(q.Get("wait"))
		if err != nil || d <= 0 || d > g.cfg.MaxWait {
			d = g.cfg.MaxWait
		}
		q.Set("wait", d.String())
	}
	return q
}

// nomadHeader is the header of a request to Nomad: the few of the client's
// headers Nomad needs to answer (content negotiation), and the hub's token.
// The renter's token (X-Nomad-Token, Authorization), cookies and forwarding
// headers are left behind.
func (g *Gateway) nomadHeader(in http.Header) http.Header {
	h := http.Header{}
	for _, k := range []string{"Accept", "Accept-Encoding", "Content-Type", "User-Agent"} {
		if v := in.Values(k); len(v) > 0 {
			h[k] = slices.Clone(v)
		}
	}
	if g.cfg.NomadToken != "" {
		h.Set("X-Nomad-Token", g.cfg.NomadToken)
	}
	return h
}

// errNotFound is Nomad's 404 for an object looked up by ID.
var errNotFound = errors.New("not found")

// namespaceOf asks Nomad, with the hub's token, which namespace an object
// addressed by ID is in.
func (g *Gateway) namespaceOf(ctx context.Context, p idParam, region string) (string, error) {
	q := url.Values{}
	if region != "" {
		q.Set("region", region)
	}
	var obj struct{ Namespace string }
	if err := g.get(ctx, p.kind.lookup(p.id), q, &obj); err != nil {
		return "", fmt.Errorf("gateway: look up %s %s: %w", p.kind, p.id, err)
	}
	return obj.Namespace, nil
}

// statusError is an unexpected answer from Nomad to the gateway's own
// request.
type statusError struct {
	status int
	body   string
}

func (e *statusError) Error() string { return fmt.Sprintf("nomad answered %d: %s", e.status, e.body) }

// get reads one JSON object from Nomad with the hub's token. A 404 is
// errNotFound.
func (g *Gateway) get(ctx context.Context, escapedPath string, q url.Values, out any) error {
	u := g.nomad + escapedPath
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header = g.nomadHeader(nil)
	resp, err := g.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return errNotFound
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return &statusError{status: resp.StatusCode, body: string(b)}
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s: %w", escapedPath, err)
	}
	return nil
}

// readBody reads a request body of at most BodyLimit bytes; over it, it
// answers 413 and returns false.
func (g *Gateway) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength > g.cfg.BodyLimit {
		g.tooLarge(w)
		return nil, false
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.BodyLimit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		g.tooLarge(w)
		return nil, false
	}
	if err != nil {
		g.text(w, http.StatusBadRequest, "could not read the request body")
		return nil, false
	}
	return b, true
}

func (g *Gateway) tooLarge(w http.ResponseWriter) {
	g.text(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is over the SpiceRoute gateway's limit of %d bytes", g.cfg.BodyLimit))
}

// proxyError answers a request the proxy could not get an answer to.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	g.fail(w, r, fmt.Errorf("gateway: forward %s %s: %w", r.Method, r.URL.Path, err))
}
