package admission_test

import (
	"os"
	"testing"

	"github.com/spiceroute/spiceroute/hub/admission"
)

// FuzzParsePolicy: any input either parses to a policy that never allows
// raw_exec, or is rejected; nothing panics.
func FuzzParsePolicy(f *testing.F) {
	if src, err := os.ReadFile("../../policies/admission.hcl"); err == nil {
		f.Add(src)
	}
	f.Add([]byte(`allowed_drivers = ["raw_exec"]` + "\ndefault_runtime = \"1h\"\nmax_runtime = \"1h\"\n"))
	f.Add([]byte("job {\n}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := admission.ParsePolicy("fuzz", src)
		if err != nil {
			return
		}
		for _, d := range p.AllowedDrivers {
			if d == "raw_exec" {
				t.Fatal("a policy allowing raw_exec was accepted")
			}
		}
		if p.DefaultRuntime <= 0 || p.DefaultRuntime > p.MaxRuntime {
			t.Fatalf("accepted runtimes default %s max %s", p.DefaultRuntime, p.MaxRuntime)
		}
	})
}
