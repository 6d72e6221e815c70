package api

import (
	"testing"

	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/scheduler/nomad"
)

// FuzzDecodeNomadJob feeds arbitrary bytes to the decoder of the "job" of
// POST /api/jobs, and what it accepts to admission's view of a job (after
// Nomad's canonicalization, as the hub does): nothing may panic, and every
// refusal is a bad_request error with a message.
func FuzzDecodeNomadJob(f *testing.F) {
	for _, s := range []string{
		`{"ID":"hello","Type":"batch","TaskGroups":[{"Name":"g","Count":2,"Tasks":[{"Name":"t","Driver":"exec","Config":{"command":"/bin/true"},"Resources":{"CPU":100,"MemoryMB":64}}]}]}`,
		`{"ID":"x","TaskGroups":[{"Name":"g","Networks":[{"Mode":"host"}],"Volumes":{"v":{"Type":"host","Source":"/"}},"Tasks":[{"Driver":"docker","Config":{"image":"a","privileged":true}}]}]}`,
		`{"Job":{}}`, `[]`, `null`, `{"TaskGroups":[null,{"Tasks":[null]}]}`, `{"ID":1}`, `{} {}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := decodeNomadJob(b)
		if err != nil {
			if coded.CodeOf(err) != CodeBadRequest || err.Error() == "" {
				t.Fatalf("refusal %v (code %q) is not a bad_request error with a message", err, coded.CodeOf(err))
			}
			return
		}
		if err := nomad.Canonicalize(j); err != nil {
			return // refused as malformed, as the hub does
		}
		aj := nomad.AdmissionJob(j)
		_ = aj.Totals()
	})
}
