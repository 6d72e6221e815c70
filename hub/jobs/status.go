package jobs

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/scheduler/nomad"
)

// CodeJobNotFound answers a renter asking about a job it does not have.
const CodeJobNotFound coded.Code = "job_not_found"

// Status is a renter's view of one job: what Nomad says about it, why it
// is not placed if it is not, and what the hub charged for it.
type Status struct {
	JobID       string        `json:"job_id"`
	Namespace   string        `json:"namespace"`
	Status      string        `json:"status"` // Nomad's: pending, running, dead; "" once Nomad forgot the job
	Stopped     bool          `json:"stopped,omitempty"`
	Unplaced    string        `json:"unplaced,omitempty"` // why Nomad cannot place it, in words
	Allocations []AllocStatus `json:"allocations"`
	// Admission is the latest admission of the job: quote, hold, charges
	// and the invoice once it ended.
	Admission *Record `json:"admission,omitempty"`
}

// AllocStatus is one allocation of a job.
type AllocStatus struct {
	ID            string       `json:"id"`
	Node          string       `json:"node"`
	ClientStatus  string       `json:"client_status"`
	DesiredStatus string       `json:"desired_status"`
	Tasks         []TaskStatus `json:"tasks"`
}

// TaskStatus is one task of an allocation.
type TaskStatus struct {
	Name       string    `json:"name"`
	State      string    `json:"state"` // pending, running, dead
	Failed     bool      `json:"failed,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// Status reports a renter's job. A job the renter never submitted is
// job_not_found, whoever else may have one by that ID.
func (s *Service) Status(ctx context.Context, renter, jobID string) (*Status, error) {
	st := &Status{JobID: jobID, Namespace: s.Sched.Namespace(renter), Allocations: []AllocStatus{}}
	recs, err := s.Store.JobAdmissions(ctx, renter, jobID, 1)
	if err != nil {
		return nil, err
	}
	if len(recs) == 1 {
		st.Admission = recs[0]
	}
	j, err := s.Sched.Job(ctx, renter, jobID)
	switch {
	case nomad.IsNotFound(err):
		if st.Admission == nil {
			return nil, coded.Errorf(CodeJobNotFound, "you have no job %q", jobID)
		}
		return st, nil
	case err != nil:
		return nil, err
	}
	st.Status = str(j.Status)
	st.Stopped = j.Stop != nil && *j.Stop
	stubs, err := s.Sched.Allocations(ctx, renter, jobID)
	if err != nil {
		return nil, err
	}
	sort.Slice(stubs, func(a, b int) bool { return stubs[a].CreateIndex > stubs[b].CreateIndex })
	for _, a := range stubs {
		as := AllocStatus{ID: a.ID, Node: a.NodeName, ClientStatus: a.ClientStatus, DesiredStatus: a.DesiredStatus, Tasks: []TaskStatus{}}
		for _, name := range sortedKeys(a.TaskStates) {
			ts := a.TaskStates[name]
			as.Tasks = append(as.Tasks, TaskStatus{Name: name, State: ts.State, Failed: ts.Failed, StartedAt: ts.StartedAt, FinishedAt: ts.FinishedAt})
		}
		st.Allocations = append(st.Allocations, as)
	}
	if !st.Stopped && st.Status != "dead" {
		if st.Unplaced, err = s.Sched.JobUnplaced(ctx, renter, jobID); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// Stop stops a renter's job; its final settlement and invoice follow once
// its allocations have stopped.
func (s *Service) Stop(ctx context.Context, renter, jobID string) error {
	if _, err := s.Sched.Job(ctx, renter, jobID); nomad.IsNotFound(err) {
		return coded.Errorf(CodeJobNotFound, "you have no job %q", jobID)
	} else if err != nil {
		return err
	}
	return s.Sched.Stop(ctx, renter, jobID, false)
}

// Logs returns what a task of a renter's job wrote to stream ("stdout" or
// "stderr"), up to limit bytes. alloc "" picks the job's newest allocation
// and task "" its only task.
func (s *Service) Logs(ctx context.Context, renter, jobID, alloc, task, stream string, limit int) (string, error) {
	if stream != "stdout" && stream != "stderr" {
		return "", coded.Errorf("invalid", "stream must be stdout or stderr, not %q", stream)
	}
	st, err := s.Status(ctx, renter, jobID)
	if err != nil {
		return "", err
	}
	var a *AllocStatus
	for i := range st.Allocations {
		if alloc == "" && len(st.Allocations[i].Tasks) > 0 || st.Allocations[i].ID == alloc {
			a = &st.Allocations[i]
			break
		}
	}
	if a == nil {
		if alloc != "" {
			return "", coded.Errorf(CodeJobNotFound, "job %q has no allocation %s", jobID, alloc)
		}
		return "", coded.Errorf(CodeJobNotFound, "job %q has no allocation that started yet", jobID)
	}
	if task == "" {
		if len(a.Tasks) != 1 {
			return "", coded.Errorf("invalid", "allocation %s has %d tasks: name one", a.ID, len(a.Tasks))
		}
		task = a.Tasks[0].Name
	}
	out, err := s.Sched.Logs(ctx, renter, a.ID, task, stream, limit)
	if err != nil {
		return out, fmt.Errorf("jobs: %w", err)
	}
	return out, nil
}

// SubmitHCL parses an HCL2 jobspec (as `nomad job run` does) and admits it.
func (s *Service) SubmitHCL(ctx context.Context, renter, hcl string) (*Admission, error) {
	j, err := s.Sched.ParseHCL(ctx, hcl)
	if err != nil {
		return nil, coded.Errorf("invalid", "jobspec: %v", err)
	}
	return s.Admit(ctx, renter, j)
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Jobs lists a renter's admissions, newest first.
func (s *Service) Jobs(ctx context.Context, renter string, limit int) ([]*Record, error) {
	return s.Store.RenterAdmissions(ctx, renter, limit)
}
