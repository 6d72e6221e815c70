package nomadagent

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// proc identifies a process by PID and start time (proc(5) stat field 22),
// so a recycled PID is never mistaken for it.
type proc struct {
	pid   int
	start uint64
}

// procStat returns the parent PID, state and start time from /proc/<pid>/stat.
func procStat(pid int) (ppid int, state byte, start uint64, err error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, 0, err
	}
	// proc(5): "pid (comm) state ppid ...": comm may hold spaces and
	// parentheses, so split after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, 0, 0, errors.New("malformed stat")
	}
	// f[0] is field 3 (state), f[1] field 4 (ppid), f[19] field 22 (starttime).
	ppid, err = strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, 0, err
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return ppid, f[0][0], start, err
}

// descendants returns every process below pid in the process tree.
func descendants(pid int) []proc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]proc{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, _, start, err := procStat(p)
		if err != nil {
			continue
		}
		children[ppid] = append(children[ppid], proc{pid: p, start: start})
	}
	var out []proc
	queue := []int{pid}
	for len(queue) > 0 {
		for _, c := range children[queue[0]] {
			out = append(out, c)
			queue = append(queue, c.pid)
		}
		queue = queue[1:]
	}
	return out
}

// alive reports whether p is still running (a zombie is not).
func (p proc) alive() bool {
	_, state, start, err := procStat(p.pid)
	return err == nil && start == p.start && state != 'Z'
}

// kill sends SIGKILL to p if it is still the same, running process.
func (p proc) kill() {
	if p.alive() {
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}
}

// cleanupHost removes what a Nomad client can leave on the host when it does
// not shut down cleanly: mounts under dir (each task's secrets/ is a tmpfs,
// the exec driver bind-mounts alloc/) and the cgroups of allocIDs' tasks.
func cleanupHost(dir string, allocIDs []string) []error {
	var errs []error
	if dir != "" {
		errs = append(errs, unmountUnder(dir)...)
	}
	for _, id := range allocIDs {
		// Nomad's client/lib/cgroupslib: cgroups v1 puts a task in
		// <ctrl>/nomad/<alloc>.<task> (cpuset: nomad/reserve/...),
		// cgroups v2 in nomad.slice/<partition>.slice/<alloc>.<task>.scope.
		for _, pattern := range []string{
			"/sys/fs/cgroup/*/nomad/" + id + ".*",
			"/sys/fs/cgroup/cpuset/nomad/reserve/" + id + ".*",
			"/sys/fs/cgroup/nomad.slice/*/" + id + ".*",
		} {
			paths, _ := filepath.Glob(pattern)
			for _, p := range paths {
				if err := syscall.Rmdir(p); err != nil && !errors.Is(err, syscall.ENOENT) {
					errs = append(errs, fmt.Errorf("remove cgroup %s: %w", p, err))
				}
			}
		}
	}
	return errs
}

// unmountUnder lazily unmounts every mount point at or below dir, deepest
// first.
func unmountUnder(dir string) []error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	dir = filepath.Clean(dir)
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4]) // proc(5) mountinfo field 5: mount point
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, mp := range points {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
		}
	}
	return errs
}

// unescapeMountinfo undoes the octal escapes (\040 for a space, ...) that
// mountinfo uses in paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
