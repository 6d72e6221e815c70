package admission_test

import (
	"strings"
	"testing"

	"github.com/spiceroute/spiceroute/hub/admission"
	"github.com/spiceroute/spiceroute/hub/coded"
)

// The repository's own policy file is the one under test.
func loadRepoPolicy(t *testing.T) *admission.Policy {
	t.Helper()
	p, err := admission.LoadPolicy("../../policies/admission.hcl")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func okJob() *admission.Job {
	return &admission.Job{ID: "hello", Type: "batch", Groups: []admission.Group{{
		Name: "g", Count: 1, DiskMB: 300,
		Tasks: []admission.Task{{Name: "t", Driver: "exec", Config: map[string]any{"command": "/bin/echo"}, CPUMHz: 500, MemoryMB: 256}},
	}}}
}

func TestAllowedJob(t *testing.T) {
	p := loadRepoPolicy(t)
	if err := p.Check(okJob(), admission.Usage{}); err != nil {
		t.Fatalf("a plain exec job was rejected: %v", err)
	}
	d := okJob()
	d.Groups[0].Tasks[0] = admission.Task{Name: "web", Driver: "docker", Config: map[string]any{"image": "spiceroute/hello:local", "mount": []any{map[string]any{"type": "tmpfs", "target": "/tmp"}}}, CPUMHz: 100, MemoryMB: 64}
	if err := p.Check(d, admission.Usage{}); err != nil {
		t.Fatalf("a plain docker job was rejected: %v", err)
	}
}

// Each rule, violated once: the error names the rule and the task.
func TestViolations(t *testing.T) {
	p := loadRepoPolicy(t)
	docker := func(cfg map[string]any) func(j *admission.Job) {
		return func(j *admission.Job) {
			j.Groups[0].Tasks[0].Driver = "docker"
			cfg["image"] = "x:local"
			j.Groups[0].Tasks[0].Config = cfg
		}
	}
	tests := []struct {
		name  string
		edit  func(j *admission.Job)
		usage admission.Usage
		want  []string
	}{
		{"RawExec", func(j *admission.Job) { j.Groups[0].Tasks[0].Driver = "raw_exec" }, admission.Usage{}, []string{`task "t"`, `driver "raw_exec" is not allowed`, "rule allowed_drivers"}},
		{"UnknownDriver", func(j *admission.Job) { j.Groups[0].Tasks[0].Driver = "qemu" }, admission.Usage{}, []string{"rule allowed_drivers"}},
		{"SystemJob", func(j *admission.Job) { j.Type = "system" }, admission.Usage{}, []string{`job type "system"`, "rule allowed_job_types"}},
		{"Privileged", docker(map[string]any{"privileged": true}), admission.Usage{}, []string{"privileged containers", "rule no_privileged", `task "t"`}},
		{"CapAdd", docker(map[string]any{"cap_add": []any{"SYS_ADMIN"}}), admission.Usage{}, []string{`"cap_add"`, "rule no_privileged"}},
		{"DockerHostNetwork", docker(map[string]any{"network_mode": "host"}), admission.Usage{}, []string{"rule no_host_network"}},
		{"DockerSocket", docker(map[string]any{"volumes": []any{"/var/run/docker.sock:/var/run/docker.sock"}}), admission.Usage{}, []string{"docker.sock", "rule no_host_volumes"}},
		{"DockerBindMount", docker(map[string]any{"mount": []any{map[string]any{"type": "bind", "source": "/etc"}}}), admission.Usage{}, []string{`mount of type "bind"`, "rule no_host_volumes"}},
		{"GroupHostNetwork", func(j *admission.Job) { j.Groups[0].NetworkMode = "host" }, admission.Usage{}, []string{`group "g"`, "rule no_host_network"}},
		{"HostVolume", func(j *admission.Job) {
			j.Groups[0].Volumes = []admission.Volume{{Name: "data", Type: "host", Source: "data"}}
		}, admission.Usage{}, []string{`volume "data"`, "rule no_host_volumes"}},
		{"JobCPU", func(j *admission.Job) { j.Groups[0].Count = 40 }, admission.Usage{}, []string{"rule job.max_cpu_mhz", "rule job.max_instances"}},
		{"JobMemory", func(j *admission.Job) { j.Groups[0].Tasks[0].MemoryMB = 40000 }, admission.Usage{}, []string{"40000 MB of memory", "rule job.max_memory_mb"}},
		{"JobDisk", func(j *admission.Job) { j.Groups[0].DiskMB = 200000 }, admission.Usage{}, []string{"rule job.max_disk_mb"}},
		{"RenterJobs", func(j *admission.Job) {}, admission.Usage{Jobs: 50}, []string{"51 running jobs", "rule renter.max_jobs"}},
		{"RenterCPU", func(j *admission.Job) {}, admission.Usage{CPUMHz: 31800}, []string{"rule renter.max_cpu_mhz"}},
		{"RenterMemory", func(j *admission.Job) {}, admission.Usage{MemoryMB: 65500}, []string{"rule renter.max_memory_mb"}},
		{"RuntimeTooLong", func(j *admission.Job) { j.Meta = map[string]string{admission.MetaMaxRuntime: "100h"} }, admission.Usage{}, []string{"longer than the maximum 72h", "rule max_runtime"}},
		{"RuntimeUnparsable", func(j *admission.Job) { j.Meta = map[string]string{admission.MetaMaxRuntime: "soon"} }, admission.Usage{}, []string{`"soon"`, "rule max_runtime"}},
		{"NoGroups", func(j *admission.Job) { j.Groups = nil }, admission.Usage{}, []string{"no task groups"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := okJob()
			tt.edit(j)
			err := p.Check(j, tt.usage)
			if coded.CodeOf(err) != admission.CodeViolation {
				t.Fatalf("got %v, want a policy_violation", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestRuntime(t *testing.T) {
	p := loadRepoPolicy(t)
	j := okJob()
	if d, err := p.Runtime(j); err != nil || d.Hours() != 1 {
		t.Fatalf("default runtime %v, %v; want 1h", d, err)
	}
	j.Meta = map[string]string{admission.MetaMaxRuntime: "90m"}
	if d, err := p.Runtime(j); err != nil || d.Minutes() != 90 {
		t.Fatalf("runtime %v, %v; want 90m", d, err)
	}
}

func TestBadPolicies(t *testing.T) {
	base := `default_runtime = "1h"
max_runtime = "2h"
`
	tests := []struct {
		name, src, want string
	}{
		{"RawExecListed", `allowed_drivers = ["exec", "raw_exec"]` + "\n" + base, "raw_exec"},
		{"UnknownDriver", `allowed_drivers = ["java"]` + "\n" + base, `unknown driver "java"`},
		{"NoDrivers", `allowed_drivers = []` + "\n" + base, "at least one driver"},
		{"SystemJobs", `allowed_drivers = ["exec"]` + "\n" + `allowed_job_types = ["system"]` + "\n" + base, `"system" is not allowed`},
		{"BadDuration", `allowed_drivers = ["exec"]` + "\n" + `default_runtime = "forever"` + "\n" + `max_runtime = "2h"`, "default_runtime"},
		{"DefaultOverMax", `allowed_drivers = ["exec"]` + "\n" + `default_runtime = "3h"` + "\n" + `max_runtime = "2h"`, "longer than max_runtime"},
		{"NegativeCap", `allowed_drivers = ["exec"]` + "\n" + base + "job {\n max_cpu_mhz = -1\n}\n", "job.max_cpu_mhz"},
		{"Syntax", `allowed_drivers = [`, "policy"},
		{"UnknownAttribute", `allowed_drivers = ["exec"]` + "\n" + base + `allow_everything = true`, "allow_everything"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := admission.ParsePolicy("test", []byte(tt.src))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}
