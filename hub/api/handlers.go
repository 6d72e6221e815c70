package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/translog"
	"golang.org/x/mod/sumdb/tlog"
)

// Default and largest page of GET /api/accounts/:id/transfers.
const (
	DefaultTransfersLimit = 100
	MaxTransfersLimit     = 1000
)

func codeOrEmpty(e *coded.Error) coded.Code {
	if e == nil {
		return ""
	}
	return e.Code
}

func (s *Server) getHub(c echo.Context) error {
	return c.JSON(http.StatusOK, s.cfg.HubInfo)
}

func (s *Server) whoami(c echo.Context) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, Whoami(p))
}

func idParam(c echo.Context, name string) (ledger.ID, error) {
	v := c.Param(name)
	id, err := ledger.ParseID(v)
	if err != nil {
		return id, badf("%s: %q is not a UUID", name, v)
	}
	return id, nil
}

func intQuery(c echo.Context, name string, def, lo, hi int64) (int64, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, badf("%s: want an integer in [%d, %d], got %q", name, lo, hi, v)
	}
	return n, nil
}

// visibleAccount returns an account the principal may see: operators see
// all, others only their own. Others' accounts are "not found".
func (s *Server) visibleAccount(ctx context.Context, p auth.Principal, id ledger.ID) (ledger.Account, error) {
	a, err := s.deps.Reader.Account(ctx, id)
	if err == nil && !p.IsOperator() && a.Owner != p.Name {
		err = coded.Errorf(CodeAccountNotFound, "account %s not found", id)
	}
	if err != nil {
		if _, ok := coded.As(err); ok {
			return a, err
		}
		return a, fmt.Errorf("api: account %s: %w", id, err)
	}
	return a, nil
}

// visibleTransfer returns a transfer the principal may see: one that
// touches an account it owns (operators see all).
func (s *Server) visibleTransfer(ctx context.Context, p auth.Principal, id ledger.ID) (ledger.Transfer, error) {
	notFound := coded.Errorf(CodeTransferNotFound, "transfer %s not found", id)
	t, err := s.deps.Reader.Transfer(ctx, id)
	if err != nil {
		if _, ok := coded.As(err); ok {
			return t, err
		}
		return t, fmt.Errorf("api: transfer %s: %w", id, err)
	}
	if p.IsOperator() {
		return t, nil
	}
	for _, aid := range []ledger.ID{t.DebitAccountID, t.CreditAccountID} {
		a, err := s.deps.Reader.Account(ctx, aid)
		if err == nil && a.Owner == p.Name {
			return t, nil
		}
		if err != nil && coded.CodeOf(err) != CodeAccountNotFound {
			return t, fmt.Errorf("api: transfer %s: %w", id, err)
		}
	}
	return ledger.Transfer{}, notFound
}

func (s *Server) createAccounts(c echo.Context) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	accounts, batch, err := decodeAccounts(c.Request().Body, ledger.MaxBatch)
	if err != nil {
		return err
	}
	for i := range accounts {
		if accounts[i].Owner == "" {
			accounts[i].Owner = p.Name
		}
	}
	res, err := s.deps.Ledger.CreateAccounts(c.Request().Context(), callerOf(p), accounts)
	if err != nil {
		return fmt.Errorf("api: create accounts: %w", err)
	}
	s.metrics.accountResults(res)
	if batch {
		return c.JSON(http.StatusOK, AccountResults{Results: res})
	}
	return replyOne(c, res[0], res[0].Err, res[0].Existed)
}

// replyOne answers a single create: the item's coded error, 200 for an
// identical retry ("existed": true), or 201 for a new commit.
func replyOne(c echo.Context, result any, err *coded.Error, existed bool) error {
	switch {
	case err != nil:
		return err
	case existed:
		return c.JSON(http.StatusOK, result)
	}
	return c.JSON(http.StatusCreated, result)
}

func (s *Server) listAccounts(c echo.Context) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	owner := c.QueryParam("owner")
	if owner == "" {
		owner = p.Name
	}
	if !p.IsOperator() && owner != p.Name {
		return coded.Errorf(ledger.CodeForbidden, "you may only list your own accounts (owner %q)", p.Name)
	}
	accounts, err := s.deps.Reader.AccountsByOwner(c.Request().Context(), owner)
	if err != nil {
		return fmt.Errorf("api: accounts of %q: %w", owner, err)
	}
	if accounts == nil {
		accounts = []ledger.Account{}
	}
	return c.JSON(http.StatusOK, AccountsReply{Accounts: accounts})
}

func (s *Server) getAccount(c echo.Context) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	a, err := s.visibleAccount(c.Request().Context(), p, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, a)
}

func (s *Server) accountTransfers(c echo.Context) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	limit, err := intQuery(c, "limit", DefaultTransfersLimit, 1, MaxTransfersLimit)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := s.visibleAccount(ctx, p, id); err != nil {
		return err
	}
	ts, err := s.deps.Reader.TransfersOfAccount(ctx, id, int(limit))
	if err != nil {
		return fmt.Errorf("api: transfers of %s: %w", id, err)
	}
	if ts == nil {
		ts = []ledger.Transfer{}
	}
	return c.JSON(http.StatusOK, TransfersReply{Transfers: ts})
}

// createOne submits one transfer and answers 201 (committed), 200 (an
// identical retry: "existed": true) or the transfer's coded error.
func (s *Server) createOne(c echo.Context, p auth.Principal, t ledger.Transfer) error {
	res, err := s.deps.Ledger.CreateTransfers(c.Request().Context(), callerOf(p), []ledger.Transfer{t})
	if err != nil {
		return fmt.Errorf("api: create transfer %s: %w", t.ID, err)
	}
	s.metrics.transferResults(res)
	return replyOne(c, res[0], res[0].Err, res[0].Existed)
}

func (s *Server) createTransfer(c echo.Context) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	ts, _, err := decodeTransfers(c.Request().Body, 1)
	if err != nil {
		if coded.CodeOf(err) == ledger.CodeBatchTooLarge {
			return badf("POST /api/transfers takes one transfer; send batches to /api/transfers/batch")
		}
		return err
	}
	return s.createOne(c, p, ts[0])
}

func (s *Server) createTransferBatch(c echo.Context) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	ts, _, err := decodeTransfers(c.Request().Body, ledger.MaxBatch)
	if err != nil {
		return err
	}
	res, err := s.deps.Ledger.CreateTransfers(c.Request().Context(), callerOf(p), ts)
	if err != nil {
		return fmt.Errorf("api: create %d transfers: %w", len(ts), err)
	}
	s.metrics.transferResults(res)
	return c.JSON(http.StatusOK, TransferResults{Results: res})
}

func (s *Server) resolveHold(c echo.Context, post bool) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	hold, err := idParam(c, "id")
	if err != nil {
		return err
	}
	h, err := decodeHold(c.Request().Body, post)
	if err != nil {
		return err
	}
	t := ledger.Transfer{ID: h.ID, PendingID: hold, Amount: h.Amount, Code: h.Code, UserData: h.UserData, Flags: ledger.VoidPending}
	if post {
		t.Flags = ledger.PostPending
	}
	return s.createOne(c, p, t)
}

func (s *Server) postHold(c echo.Context) error { return s.resolveHold(c, true) }
func (s *Server) voidHold(c echo.Context) error { return s.resolveHold(c, false) }

func (s *Server) getTransfer(c echo.Context) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	t, err := s.visibleTransfer(c.Request().Context(), p, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, t)
}

// logError maps the transparency log's errors to coded ones.
func logError(err error) error {
	switch {
	case errors.Is(err, translog.ErrNoCheckpoint):
		return coded.New(CodeNotPublished, "the log has no signed checkpoint yet; retry shortly")
	case errors.Is(err, translog.ErrNotPublished):
		return coded.New(CodeNotPublished, "that tree size is beyond the latest signed checkpoint; retry shortly")
	case errors.Is(err, translog.ErrInvalidRange):
		return badf("%v", strings.TrimPrefix(err.Error(), "translog: "))
	}
	return fmt.Errorf("api: transparency log: %w", err)
}

func hashes(hs []tlog.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i, h := range hs {
		out[i] = h[:]
	}
	return out
}

func (s *Server) transferProof(c echo.Context) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	t, err := s.visibleTransfer(ctx, p, id)
	if err != nil {
		return err
	}
	signed, tree, err := s.deps.Log.Checkpoint(ctx)
	if err != nil {
		return logError(err)
	}
	size, err := intQuery(c, "tree_size", tree.N, 1, 1<<62)
	if err != nil {
		return err
	}
	if size > tree.N {
		return coded.Errorf(CodeNotPublished, "tree_size %d is beyond the latest signed checkpoint (%d); retry shortly", size, tree.N)
	}
	if t.LogIndex >= size {
		if size == tree.N {
			return coded.Errorf(CodeNotPublished, "transfer %s is log entry %d; the latest signed checkpoint covers %d entries; retry shortly", id, t.LogIndex, tree.N)
		}
		return badf("tree_size: transfer %s is log entry %d, not in a tree of %d entries", id, t.LogIndex, size)
	}
	proof, err := s.deps.Log.InclusionProof(ctx, t.LogIndex, size)
	if err != nil {
		return logError(err)
	}
	leaf := ledger.AppendTransferEntry(nil, &t)
	reply := InclusionProof{
		TransferID: t.ID,
		LogIndex:   t.LogIndex,
		TreeSize:   size,
		Leaf:       leaf,
		Proof:      hashes(proof),
		Checkpoint: string(signed),
	}
	if size == tree.N {
		// RFC 6962 §2.1.1: the proof must lead from the leaf hash to the
		// signed root. A failure means the stored transfer is not what the
		// log holds: never hand out such a proof.
		if err := tlog.CheckRecord(proof, size, tree.Hash, t.LogIndex, tlog.RecordHash(leaf)); err != nil {
			return fmt.Errorf("api: proof of transfer %s at %d in tree %d does not verify: %w", id, t.LogIndex, size, err)
		}
		reply.RootHash = tree.Hash[:]
	}
	return c.JSON(http.StatusOK, reply)
}

func (s *Server) consistency(c echo.Context) error {
	ctx := c.Request().Context()
	signed, tree, err := s.deps.Log.Checkpoint(ctx)
	if err != nil {
		return logError(err)
	}
	if c.QueryParam("old") == "" {
		return badf("old: required (the tree size you hold a checkpoint for)")
	}
	oldSize, err := intQuery(c, "old", 0, 1, 1<<62)
	if err != nil {
		return err
	}
	newSize, err := intQuery(c, "new", tree.N, 1, 1<<62)
	if err != nil {
		return err
	}
	if newSize > tree.N {
		return coded.Errorf(CodeNotPublished, "new %d is beyond the latest signed checkpoint (%d); retry shortly", newSize, tree.N)
	}
	if oldSize > newSize {
		return badf("old %d is larger than new %d", oldSize, newSize)
	}
	proof, err := s.deps.Log.ConsistencyProof(ctx, oldSize, newSize)
	if err != nil {
		return logError(err)
	}
	return c.JSON(http.StatusOK, ConsistencyProof{Old: oldSize, New: newSize, Proof: hashes(proof), Checkpoint: string(signed)})
}

func (s *Server) createToken(c echo.Context) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	if !p.IsOperator() {
		return coded.New(ledger.CodeForbidden, "only operators may create tokens")
	}
	var req TokenRequest
	if err := decodeJSON(c.Request().Body, &req, false); err != nil {
		return err
	}
	if req.Principal == "" {
		return badf("principal: required")
	}
	if req.Role == "" {
		return badf("role: required (operator, renter or contributor)")
	}
	role, err := auth.ParseRole(string(req.Role))
	if err != nil {
		return err
	}
	np := auth.Principal{Name: req.Principal, Role: role}
	secret, err := s.deps.Tokens.CreateToken(c.Request().Context(), np, req.Name)
	if err != nil {
		if _, ok := coded.As(err); ok {
			return err
		}
		return fmt.Errorf("api: create token: %w", err)
	}
	loggerOf(c, s.log).Info("api: token created", "for", np.Name, "role", np.Role, "name", req.Name, "by", p.Name)
	return c.JSON(http.StatusCreated, Token{Secret: secret, Principal: np.Name, Role: np.Role, Name: req.Name})
}

// revokeToken revokes the presented token, or the one in the body. Anyone
// holding a secret may revoke it: holding it already lets them present it
// and revoke it, so no role check adds safety, and a user can kill a leaked
// token from another machine.
func (s *Server) revokeToken(c echo.Context) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	var req RevokeRequest
	if err := decodeJSON(c.Request().Body, &req, true); err != nil {
		return err
	}
	secret := req.Secret
	if secret == "" {
		_, secret, _ = strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
		secret = strings.TrimSpace(secret)
	}
	if err := s.deps.Tokens.RevokeToken(c.Request().Context(), secret); err != nil {
		if _, ok := coded.As(err); ok {
			return err
		}
		return fmt.Errorf("api: revoke token: %w", err)
	}
	loggerOf(c, s.log).Info("api: token revoked", "by", p.Name, "own", req.Secret == "")
	return c.NoContent(http.StatusNoContent)
}
