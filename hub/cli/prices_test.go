package cli_test

import (
	"testing"

	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/api/apitest"
	"github.com/spiceroute/spiceroute/hub/auth"
)

func TestPrices(t *testing.T) {
	h := apitest.New(t, api.Config{})
	op := map[string]string{"SPICE_ADDR": h.URL, "SPICE_TOKEN": h.Operator}
	renter := map[string]string{"SPICE_ADDR": h.URL, "SPICE_TOKEN": h.Token(t, "alice", auth.RoleRenter)}
	row(t, spice(t, renter, "prices").ok(t), "CPU", "0.040000 SP per core-hour (1000 MHz)")
	spice(t, renter, "prices", "set", "-cpu", "1", "-memory", "1", "-disk", "1").fails(t, 1, "forbidden")
	spice(t, op, "prices", "set", "-cpu", "0.05").fails(t, 2, "all required")
	spice(t, op, "prices", "set", "-cpu", "0.05", "-memory", "0.0000001", "-disk", "0").fails(t, 1, "-memory")
	contains(t, spice(t, op, "prices", "set", "-cpu", "0.05", "-memory", "0.012", "-disk", "0").ok(t), "CPU 0.050000 SP")
	out := spice(t, renter, "prices", "-history", "5").ok(t)
	row(t, out, "Memory", "0.012000 SP per GiB-hour")
	contains(t, out, "op", "0.050000 SP")
}
