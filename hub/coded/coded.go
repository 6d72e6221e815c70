// Package coded is the one error type users see: a stable machine-readable
// code and a human message. Every layer returns *Error for outcomes a user
// can act on; the HTTP layer maps codes to statuses in exactly one place.
// Anything that is not an *Error is an internal error: users see "internal
// error" and a request ID, and the full error is logged.
package coded

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable error code, e.g. "insufficient_funds".
type Code string

// Error is an error a user can act on.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Is makes errors.Is match any *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
}

// New returns an *Error with code and message.
func New(code Code, message string) *Error { return &Error{Code: code, Message: message} }

// Errorf returns an *Error with code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of the first *Error in err's chain, or "" if none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// As returns the first *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
