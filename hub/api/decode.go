package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
)

// Strict decoding of request bodies. Bodies come from anyone on the network,
// so the decoders reject anything they do not understand instead of guessing:
// unknown and duplicate fields, nulls, amounts that are strings, fractions or
// out of range, invalid UTF-8, and trailing data. Every message names the
// offending field, e.g. `transfers[2].amount: ...`.

// DecodeTransfers reads transfers from r, in the JSON form of
// ledger.Transfer: one transfer object, or {"transfers": [...]} with 1 to
// limit transfers (limit <= 0 means ledger.MaxBatch).
//
// A transfer object has the fields
//
//	id                 UUID, required
//	debit_account_id   UUID, required unless posting or voiding
//	credit_account_id  UUID, required unless posting or voiding
//	amount             integer µSP, required unless posting or voiding
//	pending_id         UUID, required (and non-zero) when flags post (4) or void (8)
//	timeout            integer seconds, for holds
//	code               integer 0-65535
//	user_data          string
//	flags              integer bit set: 1 linked, 2 pending, 4 post pending, 8 void pending
//
// The ledger fills in timestamp and log_index; a body that sets them is
// rejected. Values are checked for type and range only; the ledger judges
// the rest (zero IDs, non-positive amounts, flag combinations).
//
// Errors are *coded.Error: bad_request, batch_too_large, or body_too_large
// when r is an http.MaxBytesReader over its limit.
func DecodeTransfers(r io.Reader, limit int) ([]ledger.Transfer, error) {
	if limit <= 0 {
		limit = ledger.MaxBatch
	}
	ts, _, err := decodeTransfers(r, limit)
	return ts, err
}

// decodeTransfers is DecodeTransfers, also reporting whether the body was
// the batch form.
func decodeTransfers(r io.Reader, limit int) ([]ledger.Transfer, bool, error) {
	var out []ledger.Transfer
	batch, err := decodeBody(r, "transfers", "a transfer", limit, func(obj object, path string) error {
		t, err := transferOf(obj, path)
		out = append(out, t)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return out, batch, nil
}

// DecodeAccounts reads accounts from r: one account object or
// {"accounts": [...]} with 1 to limit accounts (limit <= 0 means
// ledger.MaxBatch). An account object has the fields id (UUID, required),
// kind (name, e.g. "renter", required), owner (string; empty means the
// caller), flags (integer: 1 allow negative, 2 closed), code (integer) and
// user_data (string). Balances, timestamp and log_index are the ledger's.
func DecodeAccounts(r io.Reader, limit int) ([]ledger.Account, error) {
	if limit <= 0 {
		limit = ledger.MaxBatch
	}
	as, _, err := decodeAccounts(r, limit)
	return as, err
}

func decodeAccounts(r io.Reader, limit int) ([]ledger.Account, bool, error) {
	var out []ledger.Account
	batch, err := decodeBody(r, "accounts", "an account", limit, func(obj object, path string) error {
		a, err := accountOf(obj, path)
		out = append(out, a)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return out, batch, nil
}

// decodeHold reads the body of a post or void: {"id", "amount"?, "code"?,
// "user_data"?}; amount only when post is set.
func decodeHold(r io.Reader, post bool) (HoldRequest, error) {
	var h HoldRequest
	_, err := decodeBody(r, "", "a JSON object", 1, func(obj object, path string) error {
		for _, f := range obj {
			var err error
			switch f.key {
			case "id":
				h.ID, err = idField(f)
			case "amount":
				if !post {
					return badf("amount: a void releases the whole hold; remove amount")
				}
				var v int64
				v, err = intField(f, math.MinInt64, math.MaxInt64)
				h.Amount = ledger.Amount(v)
			case "code":
				var v int64
				v, err = intField(f, 0, math.MaxUint16)
				h.Code = uint16(v)
			case "user_data":
				h.UserData, err = stringField(f)
			default:
				err = unknownField(f, `"id", "amount", "code" and "user_data"`)
			}
			if err != nil {
				return err
			}
		}
		if !obj.has("id") {
			return badf("id: required (the new transfer's ID, a UUID)")
		}
		return nil
	})
	return h, err
}

// decodeJSON reads a small body into v, rejecting unknown fields and
// trailing data. For bodies without amounts or IDs (tokens).
func decodeJSON(r io.Reader, v any, allowEmpty bool) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return nil
		}
		return badf("empty body: want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return badf("%s: want a JSON %s, got %s", te.Field, te.Type.Kind(), te.Value)
		}
		// encoding/json has no typed error for DisallowUnknownFields.
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return badf("%s: unknown field", strings.Trim(name, `"`))
		}
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badf("unexpected data after the JSON object")
	}
	return nil
}

func badf(format string, args ...any) *coded.Error {
	return coded.Errorf(CodeBadRequest, format, args...)
}

// readBody reads r whole, mapping http.MaxBytesReader's error to
// body_too_large and rejecting invalid UTF-8 (which encoding/json would
// silently replace).
func readBody(r io.Reader) ([]byte, error) {
	body, err := io.ReadAll(r)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, coded.Errorf(CodeBodyTooLarge, "request body over the limit of %d bytes", mbe.Limit)
		}
		return nil, badf("reading the request body: %v", err)
	}
	if !utf8.Valid(body) {
		return nil, badf("request body is not valid UTF-8")
	}
	return body, nil
}

// field is one member of a JSON object: its key and raw value.
type field struct {
	path string // e.g. "transfers[2].amount"
	key  string
	raw  json.RawMessage
}

type object []field

func (o object) has(key string) bool {
	for _, f := range o {
		if f.key == key {
			return true
		}
	}
	return false
}

// decodeBody reads one object, or {listKey: [objects...]}, calling fn for
// each object in order. what describes one object for messages.
func decodeBody(r io.Reader, listKey, what string, limit int, fn func(obj object, path string) error) (batch bool, err error) {
	body, err := readBody(r)
	if err != nil {
		return false, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if listKey == "" {
			return false, badf("empty body: want %s", what)
		}
		return false, badf("empty body: want %s or {%q: [...]}", what, listKey)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := expectDelim(dec, '{', "the body"); err != nil {
		return false, err
	}
	var single object
	seen := make(map[string]bool)
	sawList := false
	for dec.More() {
		key, err := objectKey(dec, "", seen)
		if err != nil {
			return false, err
		}
		if listKey != "" && key == listKey {
			sawList = true
			if err := decodeList(dec, listKey, limit, fn); err != nil {
				return false, err
			}
			continue
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return false, jsonError(err)
		}
		single = append(single, field{path: key, key: key, raw: raw})
	}
	if _, err := dec.Token(); err != nil { // '}'
		return false, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err != nil {
			return false, jsonError(err)
		}
		return false, badf("unexpected data after the JSON object")
	}
	if sawList {
		if len(single) > 0 {
			return false, badf("%s: unknown field next to %q (send one object, or {%q: [...]} alone)", single[0].key, listKey, listKey)
		}
		return true, nil
	}
	return false, fn(single, "")
}

// decodeList reads the array under key, calling fn for each object.
func decodeList(dec *json.Decoder, key string, limit int, fn func(obj object, path string) error) error {
	tok, err := dec.Token()
	if err != nil {
		return jsonError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return badf("%s: want an array, got %s", key, describeToken(tok))
	}
	n := 0
	for dec.More() {
		if n == limit {
			return coded.Errorf(ledger.CodeBatchTooLarge, "%s: more than the maximum of %d in one request", key, limit)
		}
		path := fmt.Sprintf("%s[%d]", key, n)
		obj, err := readObject(dec, path)
		if err != nil {
			return err
		}
		if err := fn(obj, path); err != nil {
			return err
		}
		n++
	}
	if _, err := dec.Token(); err != nil { // ']'
		return jsonError(err)
	}
	if n == 0 {
		return badf("%s: empty; send at least one", key)
	}
	return nil
}

// readObject reads one JSON object into its fields.
func readObject(dec *json.Decoder, path string) (object, error) {
	if err := expectDelim(dec, '{', path); err != nil {
		return nil, err
	}
	var obj object
	seen := make(map[string]bool)
	for dec.More() {
		key, err := objectKey(dec, path, seen)
		if err != nil {
			return nil, err
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, jsonError(err)
		}
		obj = append(obj, field{path: path + "." + key, key: key, raw: raw})
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, jsonError(err)
	}
	return obj, nil
}

func objectKey(dec *json.Decoder, path string, seen map[string]bool) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", jsonError(err)
	}
	key, ok := tok.(string)
	if !ok {
		return "", badf("malformed JSON: want an object key, got %s", describeToken(tok))
	}
	if seen[key] {
		p := key
		if path != "" {
			p = path + "." + key
		}
		return "", badf("%s: duplicate field", p)
	}
	seen[key] = true
	return key, nil
}

func expectDelim(dec *json.Decoder, want json.Delim, what string) error {
	tok, err := dec.Token()
	if err != nil {
		return jsonError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return badf("%s: want a JSON object, got %s", what, describeToken(tok))
	}
	return nil
}

func describeToken(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '[':
			return "an array"
		case '{':
			return "an object"
		}
		return fmt.Sprintf("%q", string(v))
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", tok)
}

// jsonError describes a syntax error with its byte offset.
func jsonError(err error) *coded.Error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return badf("malformed JSON at byte %d: %v", se.Offset, se)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return badf("malformed JSON: unexpected end of the body")
	}
	return badf("malformed JSON: %v", err)
}

func kindOf(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func idField(f field) (ledger.ID, error) {
	var s string
	if len(f.raw) == 0 || f.raw[0] != '"' || json.Unmarshal(f.raw, &s) != nil {
		return ledger.ID{}, badf("%s: want a UUID string, got %s", f.path, kindOf(f.raw))
	}
	id, err := ledger.ParseID(s)
	if err != nil {
		return ledger.ID{}, badf("%s: %q is not a UUID (want 8-4-4-4-12 hex digits)", f.path, s)
	}
	return id, nil
}

func stringField(f field) (string, error) {
	var s string
	if len(f.raw) == 0 || f.raw[0] != '"' || json.Unmarshal(f.raw, &s) != nil {
		return "", badf("%s: want a string, got %s", f.path, kindOf(f.raw))
	}
	return s, nil
}

// intField parses an integer in [lo, hi]. Fractions, exponents, strings
// and nulls are rejected: JSON numbers are exact only as integers.
func intField(f field, lo, hi int64) (int64, error) {
	unit := ""
	if f.key == "amount" {
		unit = " of µSP (1 SP = 1000000 µSP)"
	}
	if kindOf(f.raw) != "a number" {
		return 0, badf("%s: want an integer%s, got %s", f.path, unit, kindOf(f.raw))
	}
	s := string(f.raw)
	if bytes.ContainsAny(f.raw, ".eE") {
		return 0, badf("%s: want an integer%s, got %s", f.path, unit, s)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < lo || v > hi {
		return 0, badf("%s: %s is out of range [%d, %d]", f.path, s, lo, hi)
	}
	return v, nil
}

func unknownField(f field, known string) error {
	return badf("%s: unknown field (known: %s)", f.path, known)
}

const transferFields = `"id", "debit_account_id", "credit_account_id", "amount", "pending_id", "timeout", "code", "user_data" and "flags"`

func transferOf(obj object, path string) (ledger.Transfer, error) {
	var t ledger.Transfer
	for _, f := range obj {
		var err error
		var v int64
		switch f.key {
		case "id":
			t.ID, err = idField(f)
		case "debit_account_id":
			t.DebitAccountID, err = idField(f)
		case "credit_account_id":
			t.CreditAccountID, err = idField(f)
		case "pending_id":
			t.PendingID, err = idField(f)
		case "amount":
			v, err = intField(f, math.MinInt64, math.MaxInt64)
			t.Amount = ledger.Amount(v)
		case "timeout":
			v, err = intField(f, 0, math.MaxUint32)
			t.Timeout = uint32(v)
		case "code":
			v, err = intField(f, 0, math.MaxUint16)
			t.Code = uint16(v)
		case "flags":
			v, err = intField(f, 0, math.MaxUint16)
			t.Flags = ledger.TransferFlags(v)
		case "user_data":
			t.UserData, err = stringField(f)
		case "timestamp", "log_index":
			err = badf("%s: set by the ledger; remove it", f.path)
		default:
			err = unknownField(f, transferFields)
		}
		if err != nil {
			return t, err
		}
	}
	prefix := ""
	if path != "" {
		prefix = path + "."
	}
	if !obj.has("id") {
		return t, badf("%sid: required (a UUID you choose, so that retries are safe)", prefix)
	}
	if t.Flags&(ledger.PostPending|ledger.VoidPending) != 0 {
		// The zero pending_id counts as missing: it names no hold, and
		// ledger.Transfer's JSON omits it.
		if t.PendingID.IsZero() {
			return t, badf("%spending_id: required to post or void a hold (flags 4 or 8)", prefix)
		}
		return t, nil
	}
	for _, k := range []string{"debit_account_id", "credit_account_id", "amount"} {
		if !obj.has(k) {
			return t, badf("%s%s: required", prefix, k)
		}
	}
	return t, nil
}

const accountFields = `"id", "owner", "kind", "flags", "code" and "user_data"`

func accountOf(obj object, path string) (ledger.Account, error) {
	var a ledger.Account
	for _, f := range obj {
		var err error
		var v int64
		switch f.key {
		case "id":
			a.ID, err = idField(f)
		case "owner":
			a.Owner, err = stringField(f)
		case "kind":
			var s string
			if s, err = stringField(f); err == nil {
				if a.Kind, err = ledger.ParseAccountKind(s); err != nil {
					err = badf("%s: unknown kind %q (want renter, contributor, hub_revenue, hub_commission, escrow, peer_hub, issuance or payout)", f.path, s)
				}
			}
		case "flags":
			v, err = intField(f, 0, math.MaxUint16)
			a.Flags = ledger.AccountFlags(v)
		case "code":
			v, err = intField(f, 0, math.MaxUint16)
			a.Code = uint16(v)
		case "user_data":
			a.UserData, err = stringField(f)
		case "debits_pending", "debits_posted", "credits_pending", "credits_posted", "balance", "available", "timestamp", "log_index":
			err = badf("%s: set by the ledger; remove it", f.path)
		default:
			err = unknownField(f, accountFields)
		}
		if err != nil {
			return a, err
		}
	}
	prefix := ""
	if path != "" {
		prefix = path + "."
	}
	for _, k := range []string{"id", "kind"} {
		if !obj.has(k) {
			return a, badf("%s%s: required", prefix, k)
		}
	}
	return a, nil
}
