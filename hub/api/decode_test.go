package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
)

const (
	uuidA = "0b9c2f4e-8a53-4c8e-9d51-6f1b3c5e7a90"
	uuidB = "1c0d3e5f-9b64-4d9f-8e62-7a2c4d6f8b01"
	uuidC = "2d1e4f60-ac75-4ea0-9f73-8b3d5e7a9c12"
)

func TestDecodeTransfers(t *testing.T) {
	one := fmt.Sprintf(`{"id":%q,"debit_account_id":%q,"credit_account_id":%q,"amount":1500000,"code":7,"user_data":"job 9","flags":3,"timeout":60}`, uuidA, uuidB, uuidC)
	ts, err := api.DecodeTransfers(strings.NewReader(one), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := ledger.Transfer{
		ID: mustID(uuidA), DebitAccountID: mustID(uuidB), CreditAccountID: mustID(uuidC),
		Amount: 1_500_000, Code: 7, UserData: "job 9", Flags: ledger.Linked | ledger.Pending, Timeout: 60,
	}
	if len(ts) != 1 || ts[0] != want {
		t.Fatalf("got %+v, want %+v", ts, want)
	}
	ts, err = api.DecodeTransfers(strings.NewReader(`{"transfers":[`+one+`,`+one+`]}`), 2)
	if err != nil || len(ts) != 2 || ts[1] != want {
		t.Fatalf("batch: %+v, %v", ts, err)
	}
	post := fmt.Sprintf(`{"id":%q,"pending_id":%q,"flags":4}`, uuidA, uuidB)
	if ts, err := api.DecodeTransfers(strings.NewReader(post), 1); err != nil || ts[0].PendingID != mustID(uuidB) {
		t.Fatalf("post: %+v, %v", ts, err)
	}

	for _, tc := range []struct {
		name, body string
		limit      int
		code       coded.Code
		mention    string
	}{
		{"TooMany", `{"transfers":[` + one + `,` + one + `]}`, 1, ledger.CodeBatchTooLarge, "maximum of 1"},
		{"EmptyBatch", `{"transfers":[]}`, 0, api.CodeBadRequest, "transfers: empty"},
		{"NullBatch", `{"transfers":null}`, 0, api.CodeBadRequest, "want an array"},
		{"BatchAndField", `{"transfers":[` + one + `],"amount":1}`, 0, api.CodeBadRequest, "amount: unknown field next to"},
		{"PostWithoutPending", fmt.Sprintf(`{"id":%q,"flags":4}`, uuidA), 0, api.CodeBadRequest, "pending_id: required"},
		{"PostZeroPending", fmt.Sprintf(`{"id":%q,"flags":8,"pending_id":"00000000-0000-0000-0000-000000000000"}`, uuidA), 0, api.CodeBadRequest, "pending_id: required"},
		{"NegativeCode", strings.Replace(one, `"code":7`, `"code":-1`, 1), 0, api.CodeBadRequest, "code: -1 is out of range"},
		{"BigFlags", strings.Replace(one, `"flags":3`, `"flags":65536`, 1), 0, api.CodeBadRequest, "flags"},
		{"ExponentAmount", strings.Replace(one, `1500000`, `1.5e6`, 1), 0, api.CodeBadRequest, "amount: want an integer of µSP"},
		{"BoolUserData", strings.Replace(one, `"job 9"`, `true`, 1), 0, api.CodeBadRequest, "user_data: want a string, got a boolean"},
		{"NumberID", strings.Replace(one, `"`+uuidA+`"`, `12`, 1), 0, api.CodeBadRequest, "id: want a UUID string, got a number"},
		{"InvalidUTF8", "{\"id\":\"\xff\"}", 0, api.CodeBadRequest, "UTF-8"},
		{"NestedDuplicate", `{"transfers":[{"id":"` + uuidA + `","id":"` + uuidA + `"}]}`, 0, api.CodeBadRequest, "transfers[0].id: duplicate"},
		{"ItemNotObject", `{"transfers":[1]}`, 0, api.CodeBadRequest, "transfers[0]: want a JSON object, got a number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := api.DecodeTransfers(strings.NewReader(tc.body), tc.limit)
			ce, ok := coded.As(err)
			if !ok || ce.Code != tc.code || !strings.Contains(ce.Message, tc.mention) {
				t.Fatalf("error %v, want %s mentioning %q", err, tc.code, tc.mention)
			}
		})
	}
	t.Run("BodyTooLarge", func(t *testing.T) {
		r := http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(strings.NewReader(one)), 10)
		_, err := api.DecodeTransfers(r, 1)
		if coded.CodeOf(err) != api.CodeBodyTooLarge {
			t.Fatalf("error %v, want body_too_large", err)
		}
	})
}

func mustID(s string) ledger.ID {
	id, err := ledger.ParseID(s)
	if err != nil {
		panic(err)
	}
	return id
}

// FuzzDecodeTransfers checks that DecodeTransfers never panics, that it
// fails only with a coded error, and that whatever it accepts survives a
// round trip through encoding/json: json.Marshal of the result decodes to
// the same transfers, as one object and in the batch form.
func FuzzDecodeTransfers(f *testing.F) {
	f.Add([]byte(fmt.Sprintf(`{"id":%q,"debit_account_id":%q,"credit_account_id":%q,"amount":1}`, uuidA, uuidB, uuidC)))
	f.Add([]byte(fmt.Sprintf(`{"transfers":[{"id":%q,"pending_id":%q,"flags":4,"amount":5},{"id":%q,"debit_account_id":%q,"credit_account_id":%q,"amount":9007199254740992,"user_data":"\u003c\u2028é","timeout":4294967295,"code":65535,"flags":2}]}`, uuidA, uuidB, uuidC, uuidA, uuidB)))
	f.Add([]byte(`{"id":"0b9c2f4e8a534c8e9d516f1b3c5e7a90","debit_account_id":"00000000-0000-0000-0000-000000000000","credit_account_id":"1C0D3E5F-9B64-4D9F-8E62-7A2C4D6F8B01","amount":-0}`))
	f.Add([]byte(`{"amount":1.5}`))
	f.Add([]byte(`{"transfers":[{}]} `))
	f.Fuzz(func(t *testing.T, body []byte) {
		ts, err := api.DecodeTransfers(bytes.NewReader(body), 4)
		if err != nil {
			if _, ok := coded.As(err); !ok {
				t.Fatalf("error is not coded: %v", err)
			}
			return
		}
		if len(ts) == 0 || len(ts) > 4 {
			t.Fatalf("accepted %d transfers", len(ts))
		}
		batch, err := json.Marshal(map[string]any{"transfers": ts})
		if err != nil {
			t.Fatal(err)
		}
		again, err := api.DecodeTransfers(bytes.NewReader(batch), 4)
		if err != nil {
			t.Fatalf("re-encoded batch %s rejected: %v", batch, err)
		}
		if !reflect.DeepEqual(again, ts) {
			t.Fatalf("round trip of %q:\n got %+v\nwant %+v", body, again, ts)
		}
		for i := range ts {
			one, err := json.Marshal(ts[i])
			if err != nil {
				t.Fatal(err)
			}
			again, err := api.DecodeTransfers(bytes.NewReader(one), 1)
			if err != nil {
				t.Fatalf("re-encoded transfer %s rejected: %v", one, err)
			}
			if again[0] != ts[i] {
				t.Fatalf("round trip of %s: got %+v, want %+v", one, again[0], ts[i])
			}
		}
	})
}
