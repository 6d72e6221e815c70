package api

import (
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
)

// Wire types of the API that are not ledger or auth types. The client
// package decodes into these.

// HubInfo describes the hub (GET /api/hub).
type HubInfo struct {
	Name string `json:"name"`
	// LogOrigin is the transparency log's origin, the first line of its
	// checkpoints (c2sp.org/tlog-checkpoint).
	LogOrigin string `json:"log_origin"`
	// LogPublicKey is the log's verifier key in golang.org/x/mod/sumdb/note
	// form (name+hash+base64 key), for checking checkpoint signatures.
	LogPublicKey string `json:"log_public_key"`
	// SystemAccounts are the hub's own accounts by role, e.g. "issuance",
	// "revenue", "commission".
	SystemAccounts map[string]ledger.ID `json:"system_accounts,omitempty"`
}

// Whoami is the reply of GET /api/whoami.
type Whoami = auth.Principal

// AccountsReply lists accounts (GET /api/accounts).
type AccountsReply struct {
	Accounts []ledger.Account `json:"accounts"`
}

// AccountResults is the reply to an account batch.
type AccountResults struct {
	Results []ledger.AccountResult `json:"results"`
}

// TransfersReply lists transfers (GET /api/accounts/:id/transfers).
type TransfersReply struct {
	Transfers []ledger.Transfer `json:"transfers"`
}

// TransferResults is the reply of POST /api/transfers/batch: one result per
// submitted transfer, in order, each either the committed transfer (with
// "existed": true for an identical retry) or its "error".
type TransferResults struct {
	Results []ledger.TransferResult `json:"results"`
}

// HoldRequest is the body of POST /api/transfers/:id/post and .../void.
type HoldRequest struct {
	ID       ledger.ID     `json:"id"`               // the new post or void transfer's ID
	Amount   ledger.Amount `json:"amount,omitempty"` // post only: 0 posts the whole hold
	Code     uint16        `json:"code,omitempty"`
	UserData string        `json:"user_data,omitempty"`
}

// TokenRequest is the body of POST /api/tokens.
type TokenRequest struct {
	Principal string    `json:"principal"`
	Role      auth.Role `json:"role"`
	Name      string    `json:"name,omitempty"` // a label, e.g. "laptop"
}

// Token is a created token. Secret is shown only in this reply.
type Token struct {
	Secret    string    `json:"secret"`
	Principal string    `json:"principal"`
	Role      auth.Role `json:"role"`
	Name      string    `json:"name,omitempty"`
}

// RevokeRequest is the optional body of DELETE /api/tokens.
type RevokeRequest struct {
	Secret string `json:"secret"`
}

// InclusionProof proves that a transfer's log entry is in the log
// (RFC 6962 §2.1.1), as returned by GET /api/transfers/:id/proof.
//
// To verify: check Checkpoint's signature with the hub's LogPublicKey and
// read its tree size and root hash; recompute the leaf as
// ledger.AppendTransferEntry of the transfer (it must equal Leaf); then
// tlog.CheckRecord(Proof, TreeSize, root, LogIndex, tlog.RecordHash(Leaf)).
// When TreeSize is the checkpoint's size, RootHash is the checkpoint's root.
// For an older TreeSize, RootHash is empty: verify against a checkpoint of
// that size you already hold.
type InclusionProof struct {
	TransferID ledger.ID `json:"transfer_id"`
	LogIndex   int64     `json:"log_index"`
	TreeSize   int64     `json:"tree_size"`
	Leaf       []byte    `json:"leaf"`                // the log entry (base64)
	RootHash   []byte    `json:"root_hash,omitempty"` // 32 bytes (base64)
	Proof      [][]byte  `json:"proof"`               // 32-byte hashes (base64), leaf to root
	Checkpoint string    `json:"checkpoint"`          // the latest signed checkpoint (signed-note text)
}

// ConsistencyProof proves the tree of size Old is a prefix of the tree of
// size New (RFC 6962 §2.1.2), as returned by GET /api/log/consistency.
type ConsistencyProof struct {
	Old        int64    `json:"old"`
	New        int64    `json:"new"`
	Proof      [][]byte `json:"proof"`      // 32-byte hashes (base64)
	Checkpoint string   `json:"checkpoint"` // the latest signed checkpoint
}

// ErrorReply is the body of every error response.
type ErrorReply struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody is a coded error with the request's ID.
type ErrorBody struct {
	Code      coded.Code `json:"code"`
	Message   string     `json:"message"`
	RequestID string     `json:"request_id,omitempty"`
}
