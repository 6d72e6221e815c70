package cli

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spiceroute/spiceroute/hub/ledger"
)

func init() {
	Register("account create", "Create a ledger account", accountCreate)
	Register("account get", "Show an account and its balances", accountGet)
	Register("account list", "List the accounts of an owner", accountList)
	Register("account transfers", "List the newest transfers of an account", accountTransfers)
}

func accountCreate(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "account create", "", `
Create a ledger account. Renters and contributors may create their own
renter and contributor accounts; operators may create any account.
Creating the same account again (same ID and fields) is a no-op, so a
failed call can be retried with the ID it printed.`)
	owner := c.fs.String("owner", "", "the principal that owns the account (default: you)")
	kind := c.fs.String("kind", "renter", "renter, contributor, hub_revenue, hub_commission, escrow, peer_hub or issuance")
	idStr := c.fs.String("id", "", "the account's ID, a UUID (default: a random one, printed)")
	allowNeg := c.fs.Bool("allow-negative", false, "let the balance go negative (issuance and peer_hub accounts only)")
	code := c.fs.Uint("code", 0, "a numeric code for your own use (0-65535)")
	userData := c.fs.String("user-data", "", "a note stored with the account (at most 64 bytes)")
	if _, rc, ok := c.parse(args, 0, 0); !ok {
		return rc
	}
	k, err := ledger.ParseAccountKind(*kind)
	if err != nil {
		return c.failf("-kind: %v", err)
	}
	if *code > 0xffff {
		return c.failf("-code: %d is over 65535", *code)
	}
	a := ledger.Account{Owner: *owner, Kind: k, Code: uint16(*code), UserData: *userData}
	if *allowNeg {
		a.Flags |= ledger.AccountAllowNegative
	}
	if a.ID, err = c.idOrNew("-id", *idStr, "account"); err != nil {
		return c.fail(err)
	}
	res, err := c.client().CreateAccount(ctx, a)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(res)
	}
	status := "created"
	if res.Existed {
		status = "already existed"
	}
	fmt.Fprintf(c.env.Stdout, "Account %s %s\n\n", res.Account.ID, status)
	c.printAccount(res.Account)
	return ExitOK
}

// idOrNew parses s, or makes a random ID and tells the user on stderr so
// that a failed call can be retried with the same ID.
func (c *cmd) idOrNew(flagName, s, what string) (ledger.ID, error) {
	if s != "" {
		return parseID(flagName, s)
	}
	id := ledger.NewID()
	fmt.Fprintf(c.env.Stderr, "New %s ID %s (to retry, pass %s %s)\n", what, id, flagName, id)
	return id, nil
}

func (c *cmd) printAccount(a ledger.Account) {
	c.kv(
		[2]string{"ID", a.ID.String()},
		[2]string{"Owner", a.Owner},
		[2]string{"Kind", a.Kind.String()},
		[2]string{"Flags", accountFlagNames(a.Flags)},
		[2]string{"Balance", a.Balance().String()},
		[2]string{"Available", a.Available().String()},
		[2]string{"Debits posted", a.DebitsPosted.String()},
		[2]string{"Credits posted", a.CreditsPosted.String()},
		[2]string{"Debits pending", a.DebitsPending.String()},
		[2]string{"Credits pending", a.CreditsPending.String()},
		[2]string{"Code", strconv.Itoa(int(a.Code))},
		[2]string{"User data", orDash(a.UserData)},
		[2]string{"Created", formatTime(a.Timestamp)},
		[2]string{"Log index", strconv.FormatInt(a.LogIndex, 10)},
	)
}

func accountGet(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "account get", "ID", `Show an account and its balances.`)
	pos, rc, ok := c.parse(args, 1, 1)
	if !ok {
		return rc
	}
	id, err := parseID("ID", pos[0])
	if err != nil {
		return c.fail(err)
	}
	a, err := c.client().Account(ctx, id)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(a)
	}
	c.printAccount(a)
	return ExitOK
}

func accountList(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "account list", "", `
List the accounts of an owner, oldest first. Only operators may list
other principals' accounts.`)
	owner := c.fs.String("owner", "", "the owner (default: you)")
	if _, rc, ok := c.parse(args, 0, 0); !ok {
		return rc
	}
	as, err := c.client().Accounts(ctx, *owner)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(as)
	}
	if len(as) == 0 {
		fmt.Fprintln(c.env.Stdout, "No accounts")
		return ExitOK
	}
	tw := c.table()
	fmt.Fprintln(tw, "ID\tOwner\tKind\tBalance\tAvailable\tPending debits\tFlags")
	for _, a := range as {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Owner, a.Kind, a.Balance(), a.Available(), a.DebitsPending, accountFlagNames(a.Flags))
	}
	tw.Flush()
	return ExitOK
}

func accountTransfers(ctx context.Context, args []string, env Env) int {
	c := newCmd(env, "account transfers", "ID", `List the newest transfers of an account, newest first.`)
	limit := c.fs.Int("limit", 20, "how many transfers (at most 1000)")
	pos, rc, ok := c.parse(args, 1, 1)
	if !ok {
		return rc
	}
	id, err := parseID("ID", pos[0])
	if err != nil {
		return c.fail(err)
	}
	if *limit < 1 || *limit > 1000 {
		return c.failf("-limit: %d is not between 1 and 1000", *limit)
	}
	ts, err := c.client().AccountTransfers(ctx, id, *limit)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printJSON(ts)
	}
	if len(ts) == 0 {
		fmt.Fprintln(c.env.Stdout, "No transfers")
		return ExitOK
	}
	c.printTransfers(ts, id)
	return ExitOK
}

// printTransfers prints a table of transfers; for an account's list
// (account non-zero) the amount is signed: negative for debits.
func (c *cmd) printTransfers(ts []ledger.Transfer, account ledger.ID) {
	tw := c.table()
	fmt.Fprintln(tw, "ID\tDebit\tCredit\tAmount\tFlags\tTime\tLog index")
	for _, t := range ts {
		amount := t.Amount
		if !account.IsZero() && t.DebitAccountID == account {
			amount = -amount
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", t.ID, t.DebitAccountID, t.CreditAccountID, amount, transferFlagNames(t.Flags), formatTime(t.Timestamp), t.LogIndex)
	}
	tw.Flush()
}
