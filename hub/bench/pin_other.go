//go:build !linux

package bench

import (
	"errors"
	"time"
)

func pinSplit(nomadPID, postgresPID int) error {
	return errors.New("bench: -pin works on Linux only")
}

// treeCPU is not measured off Linux.
func treeCPU(pid int) time.Duration { return 0 }

// selfCPU is not measured off Linux.
func selfCPU() time.Duration { return 0 }
