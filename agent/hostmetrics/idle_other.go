//go:build !linux

package hostmetrics

import "time"

// Elsewhere than Linux the agent does not know the owner's idle time.
type idleTracker struct{}

func (t *idleTracker) idleSeconds(time.Time) int64 { return 0 }
