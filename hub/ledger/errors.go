package ledger

import "github.com/spiceroute/spiceroute/hub/coded"

// Outcome codes. Each rejected account or transfer carries one of these in a
// *coded.Error; they are part of the API and never change meaning.
const (
	CodeInvalid           coded.Code = "invalid"                // a field is malformed; the message says which
	CodeIDZero            coded.Code = "id_zero"                // the ID is the zero ID
	CodeAmountInvalid     coded.Code = "amount_invalid"         // zero, negative or over MaxAmount
	CodeAccountNotFound   coded.Code = "account_not_found"      // a debit or credit account does not exist
	CodeAccountClosed     coded.Code = "account_closed"         // an account is closed
	CodeSameAccount       coded.Code = "same_account"           // debit and credit are the same account
	CodeInsufficientFunds coded.Code = "insufficient_funds"     // the debit would take the account below zero
	CodeOverflow          coded.Code = "overflow"               // a balance would overflow
	CodeIDConflict        coded.Code = "id_conflict"            // the ID exists with a different body
	CodePendingNotFound   coded.Code = "pending_not_found"      // PendingID names no pending transfer
	CodePendingNotPending coded.Code = "pending_not_pending"    // PendingID names a transfer that is not a hold
	CodeHoldAlreadyPosted coded.Code = "hold_already_posted"    // the hold was posted already
	CodeHoldAlreadyVoided coded.Code = "hold_already_voided"    // the hold was voided already
	CodeHoldExpired       coded.Code = "hold_expired"           // the hold timed out
	CodeExceedsPending    coded.Code = "exceeds_pending_amount" // post for more than was held
	CodePendingMismatch   coded.Code = "pending_mismatch"       // post/void names other accounts than the hold
	CodeLinkedEventFailed coded.Code = "linked_event_failed"    // another transfer of its linked chain failed
	CodeLinkedChainOpen   coded.Code = "linked_chain_open"      // the batch ends inside a linked chain
	CodeBatchTooLarge     coded.Code = "batch_too_large"        // more than MaxBatch items in one call
	CodeForbidden         coded.Code = "forbidden"              // the caller may not do this
	CodeUnavailable       coded.Code = "unavailable"            // the ledger is closed or restarting; retry with the same ID
)

func errf(code coded.Code, format string, args ...any) *coded.Error {
	return coded.Errorf(code, format, args...)
}
