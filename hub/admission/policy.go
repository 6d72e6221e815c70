// Package admission decides whether a renter's job may reach Nomad: which
// task drivers and job types are allowed, what no job may do to the
// contributor's machine (privileged containers, host network, host volumes,
// the Docker socket), and how much one job and one renter may ask for.
//
// It works on Job, a driver-neutral description of a job that the scheduler
// package builds from a Nomad job; it imports no Nomad code. The policy is an
// HCL file (policies/admission.hcl in the repository) loaded by the hub.
package admission

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/hashicorp/hcl/v2/hclsimple"
)

// Policy is a hub's admission policy. Zero caps mean "no cap".
type Policy struct {
	AllowedDrivers  []string
	AllowedJobTypes []string
	DefaultRuntime  time.Duration
	MaxRuntime      time.Duration
	Job             JobCaps
	Renter          RenterCaps
}

// JobCaps limit one job, summed over every task of every instance.
type JobCaps struct {
	MaxInstances int
	MaxCPUMHz    int
	MaxMemoryMB  int
	MaxDiskMB    int
}

// RenterCaps limit everything one renter runs at once.
type RenterCaps struct {
	MaxJobs     int
	MaxCPUMHz   int
	MaxMemoryMB int
}

// policyFile is the HCL form of a Policy (see policies/admission.hcl).
type policyFile struct {
	AllowedDrivers  []string `hcl:"allowed_drivers"`
	AllowedJobTypes []string `hcl:"allowed_job_types,optional"`
	DefaultRuntime  string   `hcl:"default_runtime"`
	MaxRuntime      string   `hcl:"max_runtime"`
	Job             *struct {
		MaxInstances int `hcl:"max_instances,optional"`
		MaxCPUMHz    int `hcl:"max_cpu_mhz,optional"`
		MaxMemoryMB  int `hcl:"max_memory_mb,optional"`
		MaxDiskMB    int `hcl:"max_disk_mb,optional"`
	} `hcl:"job,block"`
	Renter *struct {
		MaxJobs     int `hcl:"max_jobs,optional"`
		MaxCPUMHz   int `hcl:"max_cpu_mhz,optional"`
		MaxMemoryMB int `hcl:"max_memory_mb,optional"`
	} `hcl:"renter,block"`
}

// KnownDrivers are the task drivers a policy may allow.
var KnownDrivers = []string{"exec", "docker"}

// LoadPolicy reads and validates a policy file.
func LoadPolicy(path string) (*Policy, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("admission: %w", err)
	}
	return ParsePolicy(path, src)
}

// ParsePolicy parses policy HCL; filename is used in error messages.
func ParsePolicy(filename string, src []byte) (*Policy, error) {
	var f policyFile
	if err := hclsimple.Decode(filename+".hcl", src, nil, &f); err != nil {
		return nil, fmt.Errorf("admission: policy %s: %w", filename, err)
	}
	p := &Policy{AllowedDrivers: f.AllowedDrivers, AllowedJobTypes: f.AllowedJobTypes}
	if len(p.AllowedJobTypes) == 0 {
		p.AllowedJobTypes = []string{"batch", "service"}
	}
	var errs []error
	for _, d := range p.AllowedDrivers {
		switch {
		case d == "raw_exec":
			errs = append(errs, errors.New("allowed_drivers: raw_exec runs tasks unisolated on the contributor's machine and is never allowed"))
		case !slices.Contains(KnownDrivers, d):
			errs = append(errs, fmt.Errorf("allowed_drivers: unknown driver %q (known: %v)", d, KnownDrivers))
		}
	}
	if len(p.AllowedDrivers) == 0 {
		errs = append(errs, errors.New("allowed_drivers: at least one driver is required"))
	}
	for _, t := range p.AllowedJobTypes {
		if t != "batch" && t != "service" {
			errs = append(errs, fmt.Errorf("allowed_job_types: %q is not allowed (batch or service)", t))
		}
	}
	var err error
	if p.DefaultRuntime, err = time.ParseDuration(f.DefaultRuntime); err != nil || p.DefaultRuntime <= 0 {
		errs = append(errs, fmt.Errorf("default_runtime: %q is not a positive duration", f.DefaultRuntime))
	}
	if p.MaxRuntime, err = time.ParseDuration(f.MaxRuntime); err != nil || p.MaxRuntime <= 0 {
		errs = append(errs, fmt.Errorf("max_runtime: %q is not a positive duration", f.MaxRuntime))
	}
	if p.DefaultRuntime > p.MaxRuntime {
		errs = append(errs, fmt.Errorf("default_runtime %s is longer than max_runtime %s", p.DefaultRuntime, p.MaxRuntime))
	}
	if f.Job != nil {
		p.Job = JobCaps{MaxInstances: f.Job.MaxInstances, MaxCPUMHz: f.Job.MaxCPUMHz, MaxMemoryMB: f.Job.MaxMemoryMB, MaxDiskMB: f.Job.MaxDiskMB}
	}
	if f.Renter != nil {
		p.Renter = RenterCaps{MaxJobs: f.Renter.MaxJobs, MaxCPUMHz: f.Renter.MaxCPUMHz, MaxMemoryMB: f.Renter.MaxMemoryMB}
	}
	for name, v := range map[string]int{
		"job.max_instances": p.Job.MaxInstances, "job.max_cpu_mhz": p.Job.MaxCPUMHz, "job.max_memory_mb": p.Job.MaxMemoryMB,
		"job.max_disk_mb": p.Job.MaxDiskMB, "renter.max_jobs": p.Renter.MaxJobs, "renter.max_cpu_mhz": p.Renter.MaxCPUMHz,
		"renter.max_memory_mb": p.Renter.MaxMemoryMB,
	} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s: %d is negative", name, v))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("admission: policy %s: %w", filename, err)
	}
	return p, nil
}
