package api_test

import (
	"fmt"
	"strings"

	"github.com/spiceroute/spiceroute/hub/api"
)

func ExampleDecodeTransfers() {
	ts, err := api.DecodeTransfers(strings.NewReader(`{
		"id": "0b9c2f4e-8a53-4c8e-9d51-6f1b3c5e7a90",
		"debit_account_id": "1c0d3e5f-9b64-4d9f-8e62-7a2c4d6f8b01",
		"credit_account_id": "2d1e4f60-ac75-4ea0-9f73-8b3d5e7a9c12",
		"amount": 12500000,
		"flags": 2,
		"timeout": 60
	}`), 1)
	fmt.Println(ts[0].Amount, ts[0].Flags, ts[0].Timeout, err)

	_, err = api.DecodeTransfers(strings.NewReader(`{"transfers": [
		{"id": "0b9c2f4e-8a53-4c8e-9d51-6f1b3c5e7a90", "amount": 1.5}
	]}`), 0)
	fmt.Println(err)
	// Output:
	// 12.500000 SP 2 60 <nil>
	// bad_request: transfers[0].amount: want an integer of µSP (1 SP = 1000000 µSP), got 1.5
}
