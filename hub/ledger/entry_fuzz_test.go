package ledger

import (
	"bytes"
	"testing"
)

// FuzzDecodeEntry: log leaves are outside input to every auditor. Decoding
// never panics, and the encoding is canonical: whatever decodes re-encodes
// to exactly the same bytes.
func FuzzDecodeEntry(f *testing.F) {
	f.Add(AppendTransferEntry(nil, &Transfer{ID: ID{1}, DebitAccountID: ID{2}, CreditAccountID: ID{3}, Amount: 5, Timestamp: 7}))
	f.Add(AppendTransferEntry(nil, &Transfer{ID: ID{1}, DebitAccountID: ID{2}, CreditAccountID: ID{3}, Amount: 5, PendingID: ID{4}, Flags: PostPending, UserData: "x", Timestamp: 7}))
	f.Add(AppendAccountEntry(nil, &Account{ID: ID{9}, Owner: "alice", Kind: KindRenter, Timestamp: 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if err != nil {
			return
		}
		var again []byte
		switch {
		case e.Account != nil:
			again = AppendAccountEntry(nil, e.Account)
		case e.Transfer != nil:
			again = AppendTransferEntry(nil, e.Transfer)
		default:
			t.Fatal("decoded an entry with neither account nor transfer")
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("not canonical:\n in  %x\n out %x", b, again)
		}
	})
}
