package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Log entry encoding, version 1. Every committed account and transfer is one
// leaf of the hub's transparency log, in commit order, encoded as:
//
//	entry    = version:u8 (=1) type:u8 body
//	type 1   = account:
//	           id:16 owner:str kind:u8 flags:u16 code:u16 user_data:str timestamp:i64
//	type 2   = transfer (as committed, i.e. with its result filled in):
//	           id:16 debit:16 credit:16 amount:i64 pending_id:16 timeout:u32
//	           code:u16 flags:u16 user_data:str timestamp:i64
//	str      = len:u8 bytes (UTF-8)
//
// Integers are big-endian; i64 are two's complement. The encoding is
// canonical: DecodeEntry rejects anything EncodeEntry would not produce
// (unknown versions, types or flags, trailing bytes, invalid UTF-8), so a
// leaf has exactly one meaning. The log index is not part of the leaf: it is
// the leaf's position.
const (
	entryVersion1 = 1

	EntryAccount  = 1
	EntryTransfer = 2
)

// MaxOwner is the longest account owner, in bytes.
const MaxOwner = 128

// Entry is one decoded log leaf: exactly one of Account or Transfer is set.
type Entry struct {
	Account  *Account
	Transfer *Transfer
}

// AppendAccountEntry appends the leaf encoding of a committed account.
func AppendAccountEntry(b []byte, a *Account) []byte {
	b = append(b, entryVersion1, EntryAccount)
	b = append(b, a.ID[:]...)
	b = appendStr(b, a.Owner)
	b = append(b, byte(a.Kind))
	b = binary.BigEndian.AppendUint16(b, uint16(a.Flags))
	b = binary.BigEndian.AppendUint16(b, a.Code)
	b = appendStr(b, a.UserData)
	b = binary.BigEndian.AppendUint64(b, uint64(a.Timestamp))
	return b
}

// AppendTransferEntry appends the leaf encoding of a committed transfer.
func AppendTransferEntry(b []byte, t *Transfer) []byte {
	b = append(b, entryVersion1, EntryTransfer)
	b = append(b, t.ID[:]...)
	b = append(b, t.DebitAccountID[:]...)
	b = append(b, t.CreditAccountID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(t.Amount))
	b = append(b, t.PendingID[:]...)
	b = binary.BigEndian.AppendUint32(b, t.Timeout)
	b = binary.BigEndian.AppendUint16(b, t.Code)
	b = binary.BigEndian.AppendUint16(b, uint16(t.Flags))
	b = appendStr(b, t.UserData)
	b = binary.BigEndian.AppendUint64(b, uint64(t.Timestamp))
	return b
}

func appendStr(b []byte, s string) []byte {
	// Callers validate lengths before committing; a longer string here is a bug.
	if len(s) > 255 {
		panic("ledger: string field longer than 255 bytes")
	}
	b = append(b, byte(len(s)))
	return append(b, s...)
}

var errTruncated = errors.New("truncated")

type entryReader struct {
	b   []byte
	err error
}

func (r *entryReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = errTruncated
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *entryReader) id() (id ID) {
	copy(id[:], r.take(16))
	return id
}

func (r *entryReader) u8() uint8 {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *entryReader) u16() uint16 {
	if v := r.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *entryReader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *entryReader) i64() int64 {
	if v := r.take(8); v != nil {
		return int64(binary.BigEndian.Uint64(v))
	}
	return 0
}

func (r *entryReader) str() string {
	n := int(r.u8())
	v := r.take(n)
	if r.err == nil && !utf8.Valid(v) {
		r.err = errors.New("string is not UTF-8")
	}
	return string(v)
}

// DecodeEntry parses a log leaf. It accepts exactly the encodings that
// AppendAccountEntry and AppendTransferEntry produce for valid committed
// accounts and transfers.
func DecodeEntry(b []byte) (Entry, error) {
	r := &entryReader{b: b}
	version, typ := r.u8(), r.u8()
	if r.err != nil {
		return Entry{}, fmt.Errorf("ledger: decode entry: %w", r.err)
	}
	if version != entryVersion1 {
		return Entry{}, fmt.Errorf("ledger: decode entry: unknown version %d", version)
	}
	var e Entry
	switch typ {
	case EntryAccount:
		a := &Account{}
		a.ID = r.id()
		a.Owner = r.str()
		a.Kind = AccountKind(r.u8())
		a.Flags = AccountFlags(r.u16())
		a.Code = r.u16()
		a.UserData = r.str()
		a.Timestamp = r.i64()
		if r.err == nil {
			r.err = validAccountFields(a)
		}
		if r.err == nil && a.Timestamp <= 0 {
			r.err = errors.New("timestamp not positive")
		}
		e.Account = a
	case EntryTransfer:
		t := &Transfer{}
		t.ID = r.id()
		t.DebitAccountID = r.id()
		t.CreditAccountID = r.id()
		t.Amount = Amount(r.i64())
		t.PendingID = r.id()
		t.Timeout = r.u32()
		t.Code = r.u16()
		t.Flags = TransferFlags(r.u16())
		t.UserData = r.str()
		t.Timestamp = r.i64()
		if r.err == nil {
			r.err = validCommittedTransfer(t)
		}
		e.Transfer = t
	default:
		return Entry{}, fmt.Errorf("ledger: decode entry: unknown type %d", typ)
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return Entry{}, fmt.Errorf("ledger: decode entry: %w", r.err)
	}
	return e, nil
}

// validCommittedTransfer checks the shape rules every committed transfer
// satisfies; balance rules are checked by replay.
func validCommittedTransfer(t *Transfer) error {
	if t.ID.IsZero() || t.DebitAccountID.IsZero() || t.CreditAccountID.IsZero() {
		return errors.New("zero id")
	}
	if t.DebitAccountID == t.CreditAccountID {
		return errors.New("debit and credit are the same account")
	}
	if t.Flags&^(transferFlagsClient|Expiry) != 0 {
		return fmt.Errorf("unknown flags %#x", uint16(t.Flags))
	}
	kind := t.Flags & (Pending | PostPending | VoidPending)
	if kind != 0 && kind&(kind-1) != 0 {
		return errors.New("more than one of pending, post_pending, void_pending")
	}
	if t.Flags&Expiry != 0 && t.Flags&VoidPending == 0 {
		return errors.New("expiry that is not a void")
	}
	if t.Amount <= 0 || t.Amount > MaxAmount {
		return fmt.Errorf("amount %d out of range", int64(t.Amount))
	}
	if (t.Flags&(PostPending|VoidPending) != 0) == t.PendingID.IsZero() {
		return errors.New("pending_id must be set exactly for post and void")
	}
	if t.Timeout != 0 && t.Flags&Pending == 0 || t.Timeout > MaxTimeout {
		return errors.New("timeout out of range")
	}
	if len(t.UserData) > MaxUserData {
		return errors.New("user_data too long")
	}
	if t.Timestamp <= 0 {
		return errors.New("timestamp not positive")
	}
	return nil
}

// validAccountFields checks the client-settable fields of an account.
func validAccountFields(a *Account) error {
	switch {
	case a.ID.IsZero():
		return errors.New("zero id")
	case a.Owner == "" || len(a.Owner) > MaxOwner || !utf8.ValidString(a.Owner):
		return fmt.Errorf("owner must be 1 to %d bytes of UTF-8", MaxOwner)
	case !a.Kind.Valid():
		return fmt.Errorf("unknown kind %d", a.Kind)
	case a.Flags&^accountFlagsKnown != 0:
		return fmt.Errorf("unknown flags %#x", uint16(a.Flags))
	case a.Flags&AccountAllowNegative != 0 && a.Kind != KindIssuance && a.Kind != KindPeerHub:
		return errors.New("only issuance and peer_hub accounts may go negative")
	case len(a.UserData) > MaxUserData || !utf8.ValidString(a.UserData):
		return fmt.Errorf("user_data must be at most %d bytes of UTF-8", MaxUserData)
	}
	return nil
}
