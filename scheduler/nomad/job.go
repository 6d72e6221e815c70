package nomad

import (
	"github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/hub/admission"
)

// AdmissionJob is the driver-neutral view of a Nomad job that admission
// checks. Call j.Canonicalize() first so that omitted fields carry Nomad's
// defaults (count, resources, ephemeral disk) and are counted and priced.
func AdmissionJob(j *api.Job) admission.Job {
	out := admission.Job{ID: str(j.ID), Type: str(j.Type), Meta: j.Meta}
	if out.Type == "" {
		out.Type = api.JobTypeService
	}
	for _, tg := range j.TaskGroups {
		g := admission.Group{Name: str(tg.Name), Count: 1}
		if tg.Count != nil {
			g.Count = *tg.Count
		}
		if tg.EphemeralDisk != nil && tg.EphemeralDisk.SizeMB != nil {
			g.DiskMB = *tg.EphemeralDisk.SizeMB
		}
		for _, n := range tg.Networks {
			if n != nil && n.Mode != "" {
				g.NetworkMode = n.Mode
			}
		}
		for name, v := range tg.Volumes {
			if v != nil {
				g.Volumes = append(g.Volumes, admission.Volume{Name: name, Type: v.Type, Source: v.Source})
			}
		}
		for _, t := range tg.Tasks {
			if t == nil {
				continue
			}
			at := admission.Task{Name: t.Name, Driver: t.Driver, Config: t.Config}
			if r := t.Resources; r != nil {
				if r.CPU != nil {
					at.CPUMHz = *r.CPU
				}
				if r.Cores != nil {
					at.Cores = *r.Cores
				}
				if r.MemoryMB != nil {
					at.MemoryMB = *r.MemoryMB
				}
				for _, n := range r.Networks {
					if n != nil && n.Mode != "" {
						g.NetworkMode = n.Mode
					}
				}
			}
			g.Tasks = append(g.Tasks, at)
		}
		out.Groups = append(out.Groups, g)
	}
	return out
}

func str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
