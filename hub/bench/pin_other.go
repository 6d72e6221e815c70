//go:build !linux

package bench

import "errors"

func pinSplit(nomadPID, postgresPID int) error {
	return errors.New("bench: -pin works on Linux only")
}
