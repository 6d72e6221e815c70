package bench

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is the unit of /proc/<pid>/stat's CPU times (USER_HZ, 100 on
// every Linux architecture Go supports).
const clockTicks = 100

// treeCPU is the CPU time (user and system) process pid, every process
// below it and every child of it that has exited and been waited for have
// used so far, from /proc.
func treeCPU(pid int) time.Duration {
	var ticks int64
	for i, p := range append([]int{pid}, descendantsOf(pid)...) {
		f, ok := statFields(p)
		if !ok || len(f) < 15 {
			continue
		}
		// Fields after the command: state is 0, utime 11, stime 12,
		// cutime 13, cstime 14.
		n := 2
		if i == 0 {
			n = 4 // exited children are counted once, in the root's
		}
		for _, v := range f[11 : 11+n] {
			t, _ := strconv.ParseInt(v, 10, 64)
			ticks += t
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// statFields are the fields of /proc/<pid>/stat after the command name.
func statFields(pid int) ([]string, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, false
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, false
	}
	return strings.Fields(s[i+1:]), true
}

// selfCPU is the CPU time (user and system) this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
