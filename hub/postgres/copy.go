package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/spiceroute/spiceroute/hub/ledger"
)

// copyBuf builds a PostgreSQL binary COPY stream ("COPY ... FROM STDIN
// (FORMAT binary)", PostgreSQL docs, COPY, "Binary Format"). Writing it
// directly instead of through pgx's per-value type map keeps the ledger's
// group commit off the CPU the database needs.
type copyBuf struct{ b []byte }

// PostgreSQL COPY binary format: 11-byte signature, int32 flags, int32
// header extension length.
var copySignature = []byte("PGCOPY\n\377\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

func newCopyBuf(rows, rowSize int) *copyBuf {
	c := &copyBuf{b: make([]byte, 0, len(copySignature)+rows*rowSize+2)}
	c.b = append(c.b, copySignature...)
	return c
}

// tuple starts a row of n fields: int16 field count.
func (c *copyBuf) tuple(n int) { c.b = binary.BigEndian.AppendUint16(c.b, uint16(n)) }

// Each field: int32 length (-1 for NULL), then the value in the type's
// binary send format.
func (c *copyBuf) uuid(id ledger.ID) {
	c.b = binary.BigEndian.AppendUint32(c.b, 16)
	c.b = append(c.b, id[:]...)
}

func (c *copyBuf) uuidOrNull(id ledger.ID) {
	if id.IsZero() {
		c.b = binary.BigEndian.AppendUint32(c.b, 0xFFFFFFFF)
		return
	}
	c.uuid(id)
}

func (c *copyBuf) int8(v int64) {
	c.b = binary.BigEndian.AppendUint32(c.b, 8)
	c.b = binary.BigEndian.AppendUint64(c.b, uint64(v))
}

func (c *copyBuf) int4(v int32) {
	c.b = binary.BigEndian.AppendUint32(c.b, 4)
	c.b = binary.BigEndian.AppendUint32(c.b, uint32(v))
}

func (c *copyBuf) int2(v int16) {
	c.b = binary.BigEndian.AppendUint32(c.b, 2)
	c.b = binary.BigEndian.AppendUint16(c.b, uint16(v))
}

func (c *copyBuf) text(s string) {
	c.b = binary.BigEndian.AppendUint32(c.b, uint32(len(s)))
	c.b = append(c.b, s...)
}

// send ends the stream (int16 -1) and runs the COPY on conn.
func (c *copyBuf) send(ctx context.Context, conn *pgx.Conn, sql string, rows int) error {
	c.b = binary.BigEndian.AppendUint16(c.b, 0xFFFF)
	tag, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(c.b), sql)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != int64(rows) {
		return fmt.Errorf("copied %d of %d rows", tag.RowsAffected(), rows)
	}
	return nil
}

func copyTransfers(ctx context.Context, conn *pgx.Conn, ts []ledger.Transfer) error {
	c := newCopyBuf(len(ts), 2+11*4+4*16+5*8+2*4+32)
	for i := range ts {
		t := &ts[i]
		c.tuple(11)
		c.uuid(t.ID)
		c.uuid(t.DebitAccountID)
		c.uuid(t.CreditAccountID)
		c.int8(int64(t.Amount))
		c.uuidOrNull(t.PendingID)
		c.int8(int64(t.Timeout))
		c.int4(int32(t.Code))
		c.text(t.UserData)
		c.int4(int32(t.Flags))
		c.int8(t.Timestamp)
		c.int8(t.LogIndex)
	}
	return c.send(ctx, conn, `COPY transfers (id, debit_account_id, credit_account_id, amount, pending_id, timeout, code, user_data, flags, ts, log_index) FROM STDIN (FORMAT binary)`, len(ts))
}

func copyAccounts(ctx context.Context, conn *pgx.Conn, as []ledger.Account) error {
	c := newCopyBuf(len(as), 2+12*4+16+64+2+4+4+6*8)
	for i := range as {
		a := &as[i]
		c.tuple(12)
		c.uuid(a.ID)
		c.text(a.Owner)
		c.int2(int16(a.Kind))
		c.int4(int32(a.Flags))
		c.int4(int32(a.Code))
		c.text(a.UserData)
		c.int8(0) // balances are set by the balance update of the same commit
		c.int8(0)
		c.int8(0)
		c.int8(0)
		c.int8(a.Timestamp)
		c.int8(a.LogIndex)
	}
	return c.send(ctx, conn, `COPY accounts (id, owner, kind, flags, code, user_data, debits_pending, debits_posted, credits_pending, credits_posted, ts, log_index) FROM STDIN (FORMAT binary)`, len(as))
}
