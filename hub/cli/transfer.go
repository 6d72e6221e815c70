package cli

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/client"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
)

func init() {
	Register("transfer create", "Move Spice from one account to another, or hold it", transferCreate)
	Register("transfer post", "Post a hold, in full or in part", transferPost)
	Register("transfer void", "Release a hold", transferVoid)
	Register("transfer get", "Show a transfer", transferGet)
	Register("transfer batch", "Submit a batch of transfers from a JSON file", transferBatch)
	Register("transfer proof", "Prove a transfer is in the hub's transparency log", transferProof)
}

const amountHelp = `Amounts are in SP with up to six decimals ("12.5"), or in µSP with the
suffix usp ("12500000usp").`

func parseAmount(flagName, s string) (ledger.Amount, error) {
	a, err := ledger.ParseAmount(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", flagName, err)
	}
	return a, nil
}

func transferCreate(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "transfer create", "", `
Move -amount from the account -from to the account -to. With -pending the
amount is only held (reserved) until the credit account's owner posts or
voids the hold, or -timeout passes.

Every transfer has an ID that makes it safe to retry: without -id a random
one is chosen and printed, and running the command again with that -id
either commits the transfer or reports that it already was.

`+amountHelp)
	from := c.fs.String("from", "", "the account to debit (required)")
	to := c.fs.String("to", "", "the account to credit (required)")
	amountStr := c.fs.String("amount", "", "how much to move (required)")
	idStr := c.fs.String("id", "", "the transfer's ID, a UUID (default: a random one, printed)")
	code := c.fs.Uint("code", 0, "a numeric code for your own use (0-65535)")
	userData := c.fs.String("user-data", "", "a note stored with the transfer (at most 64 bytes)")
	pending := c.fs.Bool("pending", false, "hold the amount instead of moving it")
	timeout := c.fs.Duration("timeout", 0, "with -pending: release the hold after this long, in whole seconds (0 = never)")
	linked := c.fs.Bool("linked", false, "link with the next transfer of a batch (alone, the ledger rejects it as an open chain)")
	if _, rc, ok := c.parse(args, 0, 0); !ok {
		return rc
	}
	if *from == "" || *to == "" || *amountStr == "" {
		return c.usageError("-from, -to and -amount are required")
	}
	if *code > 0xffff {
		return c.failf("-code: %d is over 65535", *code)
	}
	t := ledger.Transfer{Code: uint16(*code), UserData: *userData}
	var err error
	if t.DebitAccountID, err = parseID("-from", *from); err != nil {
		return c.fail(err)
	}
	if t.CreditAccountID, err = parseID("-to", *to); err != nil {
		return c.fail(err)
	}
	if t.Amount, err = parseAmount("-amount", *amountStr); err != nil {
		return c.fail(err)
	}
	if *pending {
		t.Flags |= ledger.Pending
	}
	if *timeout != 0 {
		if !*pending {
			return c.failf("-timeout is only for holds (-pending)")
		}
		if *timeout < time.Second || *timeout%time.Second != 0 || *timeout > ledger.MaxTimeout*time.Second {
			return c.failf("-timeout: %v is not a whole number of seconds between 1s and %v", *timeout, ledger.MaxTimeout*time.Second)
		}
		t.Timeout = uint32(*timeout / time.Second)
	}
	if *linked {
		t.Flags |= ledger.Linked
	}
	if t.ID, err = c.idOrNew("-id", *idStr, "transfer"); err != nil {
		return c.fail(err)
	}
	res, err := c.client().CreateTransfer(ctx, t)
	return c.transferResult(res, err)
}

// transferResult prints the outcome of one write. When the outcome is
// unknown (a timeout, a network error, 503) it says how to retry.
func (c *cmd) transferResult(res ledger.TransferResult, err error) int {
	if err != nil {
		if client.StatusOf(err) == 0 || coded.CodeOf(err) == ledger.CodeUnavailable {
			fmt.Fprintf(c.env.Stderr, "Error: %v\nThe transfer may or may not have been committed. Run the same command with the same -id to find out: retrying is safe.\n", err)
			return ExitError
		}
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(res)
	}
	status := "committed"
	if res.Existed {
		status = "already committed (an identical transfer with this ID exists)"
	}
	fmt.Fprintf(c.env.Stdout, "Transfer %s %s\n\n", res.Transfer.ID, status)
	c.printTransfer(res.Transfer)
	return ExitOK
}

func (c *cmd) printTransfer(t ledger.Transfer) {
	rows := [][2]string{
		{"ID", t.ID.String()},
		{"Debit account", t.DebitAccountID.String()},
		{"Credit account", t.CreditAccountID.String()},
		{"Amount", t.Amount.String()},
		{"Flags", transferFlagNames(t.Flags)},
	}
	if !t.PendingID.IsZero() {
		rows = append(rows, [2]string{"Hold", t.PendingID.String()})
	}
	if t.Flags&ledger.Pending != 0 {
		exp := "never"
		if t.Timeout > 0 {
			exp = t.ExpiresAt().UTC().Format("2006-01-02T15:04:05Z") + fmt.Sprintf(" (timeout %ds)", t.Timeout)
		}
		rows = append(rows, [2]string{"Expires", exp})
	}
	rows = append(rows,
		[2]string{"Code", strconv.Itoa(int(t.Code))},
		[2]string{"User data", orDash(t.UserData)},
		[2]string{"Time", formatTime(t.Timestamp)},
		[2]string{"Log index", strconv.FormatInt(t.LogIndex, 10)},
	)
	c.kv(rows...)
}

func transferPost(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "transfer post", "HOLD_ID", `
Post a hold: move the held amount, or only -amount of it (the rest is
released). Only the owner of the hold's credit account (or an operator)
may post it. The post is itself a transfer with its own -id.

`+amountHelp)
	amountStr := c.fs.String("amount", "", "how much of the hold to move (default: all of it)")
	idStr := c.fs.String("id", "", "the post transfer's ID (default: a random one, printed)")
	pos, rc, ok := c.parse(args, 1, 1)
	if !ok {
		return rc
	}
	hold, err := parseID("HOLD_ID", pos[0])
	if err != nil {
		return c.fail(err)
	}
	var amount ledger.Amount
	if *amountStr != "" {
		if amount, err = parseAmount("-amount", *amountStr); err != nil {
			return c.fail(err)
		}
	}
	id, err := c.idOrNew("-id", *idStr, "transfer")
	if err != nil {
		return c.fail(err)
	}
	res, err := c.client().PostHold(ctx, hold, id, amount)
	return c.transferResult(res, err)
}

func transferVoid(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "transfer void", "HOLD_ID", `
Void a hold: release all of it back to the debit account. Only the owner
of the hold's credit account (or an operator) may void it.`)
	idStr := c.fs.String("id", "", "the void transfer's ID (default: a random one, printed)")
	pos, rc, ok := c.parse(args, 1, 1)
	if !ok {
		return rc
	}
	hold, err := parseID("HOLD_ID", pos[0])
	if err != nil {
		return c.fail(err)
	}
	id, err := c.idOrNew("-id", *idStr, "transfer")
	if err != nil {
		return c.fail(err)
	}
	res, err := c.client().VoidHold(ctx, hold, id)
	return c.transferResult(res, err)
}

func transferGet(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "transfer get", "ID", `Show a transfer.`)
	pos, rc, ok := c.parse(args, 1, 1)
	if !ok {
		return rc
	}
	id, err := parseID("ID", pos[0])
	if err != nil {
		return c.fail(err)
	}
	t, err := c.client().Transfer(ctx, id)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(t)
	}
	c.printTransfer(t)
	return ExitOK
}

func transferBatch(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "transfer batch", "FILE.json|-", `
Submit up to 8190 transfers in one request, from a file or from standard
input ("-"). The file holds one transfer or {"transfers": [...]}, in the
API's JSON: IDs as UUIDs, amounts as integer µSP, flags as numbers
(1 linked, 2 pending, 4 post, 8 void). Transfers flagged linked commit
together with the next one, all or nothing.

Each transfer gets its own result; the command fails (exit 1) if any was
rejected. Resubmitting the same file is safe.`)
	pos, rc, ok := c.parse(args, 1, 1)
	if !ok {
		return rc
	}
	var r io.Reader
	if pos[0] == "-" {
		r = c.env.Stdin
	} else {
		f, err := os.Open(pos[0])
		if err != nil {
			return c.fail(err)
		}
		defer f.Close()
		r = f
	}
	ts, err := api.DecodeTransfers(r, ledger.MaxBatch)
	if err != nil {
		if ce, ok := coded.As(err); ok {
			return c.failf("%s: %s", pos[0], ce.Message)
		}
		return c.fail(err)
	}
	results, err := c.client().CreateTransfers(ctx, ts)
	if err != nil {
		return c.fail(err)
	}
	failed := 0
	for _, r := range results {
		if r.Err != nil {
			failed++
		}
	}
	if c.json {
		c.printJSON(api.TransferResults{Results: results})
	} else {
		tw := c.table()
		fmt.Fprintln(tw, "#\tID\tAmount\tResult\tLog index\tMessage")
		for i, r := range results {
			result, msg, idx := "committed", "-", strconv.FormatInt(r.Transfer.LogIndex, 10)
			switch {
			case r.Err != nil:
				result, msg, idx = string(r.Err.Code), r.Err.Message, "-"
			case r.Existed:
				result = "existed"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", i, r.Transfer.ID, r.Transfer.Amount, result, idx, msg)
		}
		tw.Flush()
		fmt.Fprintf(c.env.Stdout, "\n%d of %d transfers committed\n", len(results)-failed, len(results))
	}
	if failed > 0 {
		fmt.Fprintf(c.env.Stderr, "Error: %d of %d transfers were rejected\n", failed, len(results))
		return ExitError
	}
	return ExitOK
}

func transferProof(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "transfer proof", "ID", `
Fetch and verify the proof that a transfer is in the hub's transparency
log: the hub's signed checkpoint is checked against its log key, the log
entry against the transfer, and the Merkle inclusion proof (RFC 6962)
against the checkpoint's root hash.`)
	pos, rc, ok := c.parse(args, 1, 1)
	if !ok {
		return rc
	}
	id, err := parseID("ID", pos[0])
	if err != nil {
		return c.fail(err)
	}
	cl := c.client()
	info, err := cl.Hub(ctx)
	if err != nil {
		return c.fail(err)
	}
	t, err := cl.Transfer(ctx, id)
	if err != nil {
		return c.fail(err)
	}
	p, err := cl.TransferProof(ctx, id, 0)
	if err != nil {
		return c.fail(err)
	}
	tree, err := client.VerifyInclusion(p, t, info.LogPublicKey, nil)
	if err != nil {
		return c.failf("the proof does NOT verify: %v", err)
	}
	if c.json {
		return c.printJSON(struct {
			api.InclusionProof
			Verified bool `json:"verified"`
		}{p, true})
	}
	c.kv(
		[2]string{"Transfer", t.ID.String()},
		[2]string{"Log index", strconv.FormatInt(p.LogIndex, 10)},
		[2]string{"Tree size", strconv.FormatInt(tree.N, 10)},
		[2]string{"Root hash", base64.StdEncoding.EncodeToString(tree.Hash[:])},
		[2]string{"Proof hashes", strconv.Itoa(len(p.Proof))},
		[2]string{"Log key", info.LogPublicKey},
		[2]string{"Verified", "yes: signed checkpoint, log entry and inclusion proof"},
	)
	fmt.Fprintf(c.env.Stdout, "\nCheckpoint:\n%s", indent(p.Checkpoint))
	return ExitOK
}

func indent(s string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		if line != "" {
			b.WriteString("    " + line)
		}
	}
	return b.String()
}
