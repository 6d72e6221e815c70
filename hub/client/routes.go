package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/translog"
)

// Hub returns the hub's description (GET /api/hub; no token needed).
func (c *Client) Hub(ctx context.Context) (api.HubInfo, error) {
	var info api.HubInfo
	_, err := c.do(ctx, http.MethodGet, "/api/hub", nil, nil, &info)
	return info, err
}

// Health checks GET /healthz.
func (c *Client) Health(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, "/healthz", nil, nil, nil)
	return err
}

// Whoami returns the principal of the client's token.
func (c *Client) Whoami(ctx context.Context) (auth.Principal, error) {
	var p api.Whoami
	_, err := c.do(ctx, http.MethodGet, "/api/whoami", nil, nil, &p)
	return p, err
}

// accountBody is what the API accepts for an account: the client-set
// fields only (ledger.Account's JSON carries balances, which it rejects).
type accountBody struct {
	ID       ledger.ID           `json:"id"`
	Owner    string              `json:"owner,omitempty"`
	Kind     ledger.AccountKind  `json:"kind"`
	Flags    ledger.AccountFlags `json:"flags,omitempty"`
	Code     uint16              `json:"code,omitempty"`
	UserData string              `json:"user_data,omitempty"`
}

func bodyOf(a ledger.Account) accountBody {
	return accountBody{ID: a.ID, Owner: a.Owner, Kind: a.Kind, Flags: a.Flags, Code: a.Code, UserData: a.UserData}
}

// CreateAccount creates one account (an empty Owner means the caller). The
// result's Existed is set when an identical account was already there; a
// rejected account is an error.
func (c *Client) CreateAccount(ctx context.Context, a ledger.Account) (ledger.AccountResult, error) {
	var r ledger.AccountResult
	_, err := c.do(ctx, http.MethodPost, "/api/accounts", nil, bodyOf(a), &r)
	return r, err
}

// CreateAccounts creates a batch of accounts; each result says what
// happened to its account.
func (c *Client) CreateAccounts(ctx context.Context, accounts []ledger.Account) ([]ledger.AccountResult, error) {
	body := struct {
		Accounts []accountBody `json:"accounts"`
	}{make([]accountBody, len(accounts))}
	for i, a := range accounts {
		body.Accounts[i] = bodyOf(a)
	}
	var r api.AccountResults
	_, err := c.do(ctx, http.MethodPost, "/api/accounts", nil, body, &r)
	return r.Results, err
}

// Account returns one account with its balances.
func (c *Client) Account(ctx context.Context, id ledger.ID) (ledger.Account, error) {
	var a ledger.Account
	_, err := c.do(ctx, http.MethodGet, "/api/accounts/"+id.String(), nil, nil, &a)
	return a, err
}

// Accounts lists the accounts of owner ("" = the caller).
func (c *Client) Accounts(ctx context.Context, owner string) ([]ledger.Account, error) {
	q := url.Values{}
	if owner != "" {
		q.Set("owner", owner)
	}
	var r api.AccountsReply
	_, err := c.do(ctx, http.MethodGet, "/api/accounts", q, nil, &r)
	return r.Accounts, err
}

// AccountTransfers returns the newest transfers of an account, newest
// first (limit 0 = the hub's default).
func (c *Client) AccountTransfers(ctx context.Context, id ledger.ID, limit int) ([]ledger.Transfer, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var r api.TransfersReply
	_, err := c.do(ctx, http.MethodGet, "/api/accounts/"+id.String()+"/transfers", q, nil, &r)
	return r.Transfers, err
}

// CreateTransfer submits one transfer. It returns the committed transfer
// (with its timestamp and log index); Existed is set when the same
// transfer had already been committed (a retry). A rejected transfer is an
// error with the ledger's code.
func (c *Client) CreateTransfer(ctx context.Context, t ledger.Transfer) (ledger.TransferResult, error) {
	t.Timestamp, t.LogIndex = 0, 0 // the ledger's; a committed transfer may be resent as is
	var r ledger.TransferResult
	_, err := c.do(ctx, http.MethodPost, "/api/transfers", nil, t, &r)
	return r, err
}

// CreateTransfers submits a batch (at most ledger.MaxBatch); linked chains
// commit all or nothing. Each result is the committed transfer or its
// error; the error return is for the batch as a whole.
func (c *Client) CreateTransfers(ctx context.Context, ts []ledger.Transfer) ([]ledger.TransferResult, error) {
	body := struct {
		Transfers []ledger.Transfer `json:"transfers"`
	}{make([]ledger.Transfer, len(ts))}
	for i, t := range ts {
		t.Timestamp, t.LogIndex = 0, 0
		body.Transfers[i] = t
	}
	var r api.TransferResults
	_, err := c.do(ctx, http.MethodPost, "/api/transfers/batch", nil, body, &r)
	return r.Results, err
}

// PostHold posts the hold with ID hold as a new transfer id, for amount
// (0 = all of it; the rest is released).
func (c *Client) PostHold(ctx context.Context, hold, id ledger.ID, amount ledger.Amount) (ledger.TransferResult, error) {
	var r ledger.TransferResult
	_, err := c.do(ctx, http.MethodPost, "/api/transfers/"+hold.String()+"/post", nil, api.HoldRequest{ID: id, Amount: amount}, &r)
	return r, err
}

// VoidHold releases the hold with ID hold, as a new transfer id.
func (c *Client) VoidHold(ctx context.Context, hold, id ledger.ID) (ledger.TransferResult, error) {
	var r ledger.TransferResult
	_, err := c.do(ctx, http.MethodPost, "/api/transfers/"+hold.String()+"/void", nil, api.HoldRequest{ID: id}, &r)
	return r, err
}

// Transfer returns one transfer.
func (c *Client) Transfer(ctx context.Context, id ledger.ID) (ledger.Transfer, error) {
	var t ledger.Transfer
	_, err := c.do(ctx, http.MethodGet, "/api/transfers/"+id.String(), nil, nil, &t)
	return t, err
}

// TransferProof returns the inclusion proof of a transfer in the tree of
// size treeSize (0 = the latest checkpoint). It does not verify it: see
// VerifyInclusion.
func (c *Client) TransferProof(ctx context.Context, id ledger.ID, treeSize int64) (api.InclusionProof, error) {
	q := url.Values{}
	if treeSize > 0 {
		q.Set("tree_size", strconv.FormatInt(treeSize, 10))
	}
	var p api.InclusionProof
	_, err := c.do(ctx, http.MethodGet, "/api/transfers/"+id.String()+"/proof", q, nil, &p)
	return p, err
}

// Consistency returns a proof that the tree of size oldSize is a prefix of
// the tree of size newSize (0 = the latest checkpoint).
func (c *Client) Consistency(ctx context.Context, oldSize, newSize int64) (api.ConsistencyProof, error) {
	q := url.Values{"old": {strconv.FormatInt(oldSize, 10)}}
	if newSize > 0 {
		q.Set("new", strconv.FormatInt(newSize, 10))
	}
	var p api.ConsistencyProof
	_, err := c.do(ctx, http.MethodGet, "/api/log/consistency", q, nil, &p)
	return p, err
}

// CreateToken creates a token for principal with role (operators only).
// The secret in the reply is not stored by the hub and cannot be shown again.
func (c *Client) CreateToken(ctx context.Context, principal string, role auth.Role, name string) (api.Token, error) {
	var t api.Token
	_, err := c.do(ctx, http.MethodPost, "/api/tokens", nil, api.TokenRequest{Principal: principal, Role: role, Name: name}, &t)
	return t, err
}

// RevokeToken revokes the token secret, or the client's own token when
// secret is "".
func (c *Client) RevokeToken(ctx context.Context, secret string) error {
	var body any
	if secret != "" {
		body = api.RevokeRequest{Secret: secret}
	}
	_, err := c.do(ctx, http.MethodDelete, "/api/tokens", nil, body, nil)
	return err
}

// VerifyInclusion checks an inclusion proof of transfer t: the checkpoint
// is signed by vkey (the hub's log key, api.HubInfo.LogPublicKey), the leaf
// is t's log entry, and the proof leads from it to the checkpoint's root
// (RFC 6962 §2.1.1). It returns the verified checkpoint's tree. Proofs
// against an older tree size than the checkpoint's are checked against
// root, which must then be given (from a checkpoint the caller holds).
func VerifyInclusion(p api.InclusionProof, t ledger.Transfer, vkey string, root *tlog.Tree) (tlog.Tree, error) {
	cp, err := translog.VerifyCheckpoint([]byte(p.Checkpoint), vkey)
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("client: verify proof: %w", err)
	}
	tree := cp.Tree
	if p.TreeSize != tree.N {
		if root == nil || root.N != p.TreeSize {
			return tlog.Tree{}, fmt.Errorf("client: verify proof: proof is for tree size %d, checkpoint is %d; pass that tree", p.TreeSize, tree.N)
		}
		tree = *root
	}
	leaf := ledger.AppendTransferEntry(nil, &t)
	if string(leaf) != string(p.Leaf) {
		return tlog.Tree{}, fmt.Errorf("client: verify proof: the log entry is not transfer %s as given", t.ID)
	}
	if p.LogIndex != t.LogIndex {
		return tlog.Tree{}, fmt.Errorf("client: verify proof: proof is for log index %d, transfer %s is at %d", p.LogIndex, t.ID, t.LogIndex)
	}
	proof := make(tlog.RecordProof, len(p.Proof))
	for i, h := range p.Proof {
		if len(h) != tlog.HashSize {
			return tlog.Tree{}, fmt.Errorf("client: verify proof: hash %d has %d bytes", i, len(h))
		}
		copy(proof[i][:], h)
	}
	if err := tlog.CheckRecord(proof, tree.N, tree.Hash, p.LogIndex, tlog.RecordHash(leaf)); err != nil {
		return tlog.Tree{}, fmt.Errorf("client: verify proof: %w", err)
	}
	return tree, nil
}
