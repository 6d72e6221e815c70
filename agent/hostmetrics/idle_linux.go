package hostmetrics

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Idle time on Linux is the time since the newest owner input the agent
// can see without a desktop session's help:
//
//   - Terminal input: the kernel sets a terminal's access time when a
//     process reads input from it (drivers/tty/tty_io.c tty_update_time,
//     in steps of 8 seconds), which is how w(1) computes IDLE. The newest
//     access time of /dev/pts/* (SSH and terminal-emulator sessions) and
//     /dev/tty[0-9]* (virtual consoles) counts.
//   - Built-in keyboards and touchpads on the i8042 (PS/2) controller, as
//     in most laptops: a change of its interrupt counts in /proc/interrupts
//     between two samples counts as input at the later sample.
//
// Not seen: USB keyboards and mice in a graphical session (their interrupts
// are shared with everything else on the USB controller, and X11/Wayland
// keep their idle time to themselves; logind's IdleSinceHint over D-Bus
// would be the next source to add). A machine where none of the sources
// exist, typically a server nobody logs in to, reports 0 ("unknown").
type idleTracker struct {
	i8042      uint64    // the last i8042 interrupt count seen
	seenI8042  bool      // i8042 was read at least once
	lastI8042  time.Time // when the count last changed
	ttyPattern []string  // globs of terminals; nil: the defaults
}

var defaultTTYs = []string{"/dev/pts/[0-9]*", "/dev/tty[0-9]*"}

func (t *idleTracker) idleSeconds(now time.Time) int64 {
	last := t.lastI8042
	if n, ok := i8042Interrupts(); ok {
		if t.seenI8042 && n != t.i8042 {
			t.lastI8042, last = now, now
		}
		t.i8042, t.seenI8042 = n, true
	}
	patterns := t.ttyPattern
	if patterns == nil {
		patterns = defaultTTYs
	}
	if tty := newestAccess(patterns); tty.After(last) {
		last = tty
	}
	if last.IsZero() || last.After(now) {
		return 0
	}
	return int64(now.Sub(last) / time.Second)
}

// newestAccess is the newest access time of the files matching patterns.
func newestAccess(patterns []string) time.Time {
	var newest time.Time
	for _, p := range patterns {
		paths, _ := filepath.Glob(p)
		for _, path := range paths {
			var st syscall.Stat_t
			if syscall.Stat(path, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFCHR {
				continue
			}
			if at := time.Unix(st.Atim.Sec, st.Atim.Nsec); at.After(newest) {
				newest = at
			}
		}
	}
	return newest
}

// i8042Interrupts sums the i8042 lines of /proc/interrupts (proc(5): an
// IRQ, one count per CPU, then the controller and device names).
func i8042Interrupts() (uint64, bool) {
	f, err := os.Open("/proc/interrupts")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var sum uint64
	found := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, "i8042") {
			continue
		}
		found = true
		for _, f := range strings.Fields(line)[1:] {
			n, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				break
			}
			sum += n
		}
	}
	return sum, found
}
