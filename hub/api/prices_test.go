package api_test

import (
	"net/http"
	"testing"

	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/api/apitest"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
)

func TestPrices(t *testing.T) {
	h := apitest.New(t, api.Config{})
	op := h.Token(t, "op", auth.RoleOperator)
	alice := h.Token(t, "alice", auth.RoleRenter)

	var got api.PricesReply
	call(t, h, "GET", "/api/prices", "", nil).want(t, http.StatusOK, &got)
	if got.Prices != market.DefaultPrices {
		t.Fatalf("a new hub's prices %+v, want the defaults %+v", got.Prices, market.DefaultPrices)
	}

	t.Run("RenterCannotSet", func(t *testing.T) {
		call(t, h, "PUT", "/api/prices", alice, map[string]int{"cpu_core_hour": 1, "memory_gib_hour": 1, "disk_gib_hour": 1}).
			wantError(t, http.StatusForbidden, ledger.CodeForbidden)
	})
	t.Run("AllFieldsRequired", func(t *testing.T) {
		call(t, h, "PUT", "/api/prices", op, map[string]int{"cpu_core_hour": 1}).wantError(t, http.StatusBadRequest, api.CodeBadRequest)
	})
	t.Run("FloatRejected", func(t *testing.T) {
		call(t, h, "PUT", "/api/prices", op, `{"cpu_core_hour": 0.5, "memory_gib_hour": 1, "disk_gib_hour": 1}`).wantError(t, http.StatusBadRequest, api.CodeBadRequest)
	})
	t.Run("NegativeRejected", func(t *testing.T) {
		call(t, h, "PUT", "/api/prices", op, map[string]int{"cpu_core_hour": -1, "memory_gib_hour": 1, "disk_gib_hour": 1}).wantError(t, http.StatusBadRequest, market.CodeInvalidPrice)
	})

	set := map[string]int{"cpu_core_hour": 60_000, "memory_gib_hour": 12_000, "disk_gib_hour": 300}
	call(t, h, "PUT", "/api/prices", op, set).want(t, http.StatusOK, nil)
	call(t, h, "GET", "/api/prices?history=5", alice, nil).want(t, http.StatusOK, &got)
	want := market.Prices{CPU: 60_000, Memory: 12_000, Disk: 300}
	if got.Prices != want || len(got.History) != 1 || got.History[0].Prices != want || got.History[0].SetBy != "op" {
		t.Fatalf("after set: %+v", got)
	}
}
