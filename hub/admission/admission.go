package admission

import (
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/spiceroute/spiceroute/hub/coded"
)

// Meta keys a job uses to talk to the hub.
const (
	// MetaMaxRuntime is the job's own runtime limit, a Go duration ("2h").
	MetaMaxRuntime = "spiceroute_max_runtime"
	// MetaMaxPrice is the most the renter will pay for the job, in SP ("12.5").
	MetaMaxPrice = "spiceroute_max_price"
)

// CodeViolation is the code of a rejected job; the message lists every
// violated rule with the group and task it concerns.
const CodeViolation coded.Code = "policy_violation"

// Job is the driver-neutral view of a renter's job that admission checks.
type Job struct {
	ID     string
	Type   string // batch, service, system, sysbatch
	Meta   map[string]string
	Groups []Group
}

// Group is a task group: Count instances of its tasks.
type Group struct {
	Name        string
	Count       int
	NetworkMode string   // "", "bridge", "host", "none", "cni/..."
	Volumes     []Volume // group volume requests
	DiskMB      int      // ephemeral disk per instance
	Tasks       []Task
}

// Volume is a group volume request.
type Volume struct {
	Name   string
	Type   string // "host", "csi"
	Source string
}

// Task is one task of a group.
type Task struct {
	Name     string
	Driver   string
	Config   map[string]any // the driver's config block, as decoded JSON
	CPUMHz   int
	Cores    int // reserved cores; counted as CoreMHz each
	MemoryMB int
}

// CoreMHz is what one reserved core counts as against CPU caps.
const CoreMHz = 1000

// Usage is what a renter already runs (the job being admitted excluded).
type Usage struct {
	Jobs     int
	CPUMHz   int
	MemoryMB int
}

// Resources are a job's totals over every task of every instance.
type Resources struct {
	Instances int
	CPUMHz    int
	MemoryMB  int
	DiskMB    int
}

// Totals sums a job's resources.
func (j *Job) Totals() Resources {
	var r Resources
	for _, g := range j.Groups {
		r.Instances += g.Count
		r.DiskMB += g.Count * g.DiskMB
		for _, t := range g.Tasks {
			r.CPUMHz += g.Count * (t.CPUMHz + t.Cores*CoreMHz)
			r.MemoryMB += g.Count * t.MemoryMB
		}
	}
	return r
}

// Runtime returns the job's runtime limit: its meta, or the policy default.
func (p *Policy) Runtime(j *Job) (time.Duration, error) {
	s, ok := j.Meta[MetaMaxRuntime]
	if !ok {
		return p.DefaultRuntime, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, coded.Errorf(CodeViolation, "meta %s: %q is not a positive duration like \"2h\"", MetaMaxRuntime, s)
	}
	return d, nil
}

// Check returns nil if the job may run, or a *coded.Error with code
// policy_violation listing every violation.
func (p *Policy) Check(j *Job, u Usage) error {
	var v violations
	if !contains(p.AllowedJobTypes, j.Type) {
		v.add("allowed_job_types", "", "", "job type %q is not allowed (allowed: %s)", j.Type, strings.Join(p.AllowedJobTypes, ", "))
	}
	if rt, err := p.Runtime(j); err != nil {
		v.add("max_runtime", "", "", "%s", err.(*coded.Error).Message)
	} else if rt > p.MaxRuntime {
		v.add("max_runtime", "", "", "runtime %s is longer than the maximum %s", rt, p.MaxRuntime)
	}
	if len(j.Groups) == 0 {
		v.add("job", "", "", "the job has no task groups")
	}
	for _, g := range j.Groups {
		p.checkGroup(&v, g)
	}
	tot := j.Totals()
	v.cap("job.max_instances", tot.Instances, p.Job.MaxInstances, "instances")
	v.cap("job.max_cpu_mhz", tot.CPUMHz, p.Job.MaxCPUMHz, "MHz of CPU")
	v.cap("job.max_memory_mb", tot.MemoryMB, p.Job.MaxMemoryMB, "MB of memory")
	v.cap("job.max_disk_mb", tot.DiskMB, p.Job.MaxDiskMB, "MB of disk")
	v.cap("renter.max_jobs", u.Jobs+1, p.Renter.MaxJobs, "running jobs with this one")
	v.cap("renter.max_cpu_mhz", u.CPUMHz+tot.CPUMHz, p.Renter.MaxCPUMHz, "MHz of CPU across your running jobs with this one")
	v.cap("renter.max_memory_mb", u.MemoryMB+tot.MemoryMB, p.Renter.MaxMemoryMB, "MB of memory across your running jobs with this one")
	return v.err()
}

func (p *Policy) checkGroup(v *violations, g Group) {
	if g.Count < 0 {
		v.add("count", g.Name, "", "count %d is negative", g.Count)
	}
	if g.NetworkMode == "host" {
		v.add("no_host_network", g.Name, "", "network mode \"host\" shares the contributor's network stack")
	}
	for _, vol := range g.Volumes {
		v.add("no_host_volumes", g.Name, "", "volume %q of type %q: renters' jobs may not mount contributors' storage", vol.Name, vol.Type)
	}
	if len(g.Tasks) == 0 {
		v.add("job", g.Name, "", "the group has no tasks")
	}
	for _, t := range g.Tasks {
		if !contains(p.AllowedDrivers, t.Driver) || t.Driver == "raw_exec" {
			v.add("allowed_drivers", g.Name, t.Name, "driver %q is not allowed (allowed: %s)", t.Driver, strings.Join(p.AllowedDrivers, ", "))
			continue
		}
		if t.CPUMHz < 0 || t.MemoryMB < 0 || t.Cores < 0 {
			v.add("resources", g.Name, t.Name, "negative resources")
		}
		if t.Driver == "docker" {
			checkDocker(v, g.Name, t)
		}
	}
}

// checkDocker refuses docker options that escape the container's isolation.
func checkDocker(v *violations, group string, t Task) {
	c := t.Config
	if b, _ := c["privileged"].(bool); b {
		v.add("no_privileged", group, t.Name, "privileged containers are not allowed")
	}
	for _, key := range []string{"cap_add", "devices", "security_opt", "sysctl", "ulimit"} {
		if present(c[key]) {
			v.add("no_privileged", group, t.Name, "docker option %q is not allowed", key)
		}
	}
	for _, key := range []string{"network_mode", "pid_mode", "ipc_mode", "uts_mode", "userns_mode"} {
		if s, _ := c[key].(string); s == "host" || strings.HasPrefix(s, "container:") {
			rule := "no_privileged"
			if key == "network_mode" {
				rule = "no_host_network"
			}
			v.add(rule, group, t.Name, "docker %s %q shares the contributor's namespaces", key, s)
		}
	}
	if vols, ok := c["volumes"].([]any); ok {
		for _, x := range vols {
			s, _ := x.(string)
			src, _, _ := strings.Cut(s, ":")
			if path.IsAbs(src) || strings.Contains(src, "docker.sock") {
				v.add("no_host_volumes", group, t.Name, "docker volume %q mounts a path of the contributor's machine", s)
			}
		}
	}
	if mounts, ok := c["mount"].([]any); ok {
		for _, x := range mounts {
			m, _ := x.(map[string]any)
			if typ, _ := m["type"].(string); typ != "tmpfs" {
				v.add("no_host_volumes", group, t.Name, "docker mount of type %q is not allowed (only tmpfs)", typ)
			}
		}
	}
}

func present(x any) bool {
	switch x := x.(type) {
	case nil:
		return false
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	case string:
		return x != ""
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type violations []string

func (v *violations) add(rule, group, task, format string, args ...any) {
	where := ""
	switch {
	case task != "":
		where = fmt.Sprintf("group %q task %q: ", group, task)
	case group != "":
		where = fmt.Sprintf("group %q: ", group)
	}
	*v = append(*v, fmt.Sprintf("%s%s (rule %s)", where, fmt.Sprintf(format, args...), rule))
}

func (v *violations) cap(rule string, got, max int, what string) {
	if max > 0 && got > max {
		v.add(rule, "", "", "%d %s, more than the maximum %d", got, what, max)
	}
}

func (v violations) err() error {
	if len(v) == 0 {
		return nil
	}
	return coded.Errorf(CodeViolation, "the job breaks the hub's admission policy: %s", strings.Join(v, "; "))
}
