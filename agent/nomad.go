package agent

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spiceroute/spiceroute/agent/agentapi"
	"github.com/spiceroute/spiceroute/agent/nomadclient"
)

// NomadFiles are the Nomad client's files in the state directory.
type NomadFiles struct {
	DataDir    string // the client's data_dir
	ConfigPath string // its configuration (HCL)
	EnvPath    string // NOMAD_CLIENT_INTRO_TOKEN=..., for a systemd EnvironmentFile (0600)
	LogPath    string // its log (Nomad rotates it)
	StderrPath string // its standard error
}

// Files are the agent's Nomad client files under dir.
func nomadFiles(dir string) NomadFiles {
	return NomadFiles{
		DataDir:    filepath.Join(dir, "nomad"),
		ConfigPath: filepath.Join(dir, "nomad-client.hcl"),
		EnvPath:    filepath.Join(dir, "nomad-client.env"),
		LogPath:    filepath.Join(dir, "nomad.log"),
		StderrPath: filepath.Join(dir, "nomad-stderr.log"),
	}
}

// NodeMeta is the Nomad node metadata for a join: the hub's (which the
// client must carry), completed with what the agent knows where the hub
// left a key out; the agent version is always the agent's own.
func NodeMeta(st *State) map[string]string {
	meta := maps.Clone(st.Join.Nomad.Meta)
	if meta == nil {
		meta = map[string]string{}
	}
	fill := func(k, v string) {
		if _, ok := meta[k]; !ok && v != "" {
			meta[k] = v
		}
	}
	fill(agentapi.MetaAccount, st.Join.AccountID)
	fill(agentapi.MetaMachine, st.Join.MachineID)
	fill(agentapi.MetaRegion, st.Offer.Region)
	fill(agentapi.MetaFloorCPU, strconv.FormatInt(st.Offer.FloorCPU, 10))
	meta[agentapi.MetaAgentVersion] = Version
	return meta
}

// NomadConfig is the Nomad client configuration for the joined machine.
func NomadConfig(st *State, stateDir string, httpPort int) nomadclient.Config {
	f := nomadFiles(stateDir)
	c := nomadclient.FromJoin(st.Join.Nomad, st.Offer, f.DataDir, httpPort)
	c.Meta = NodeMeta(st)
	c.LogFile = f.LogPath
	return c
}

// WriteNomadConfig writes the Nomad client's configuration and the
// introduction token's environment file into the state directory and
// returns their paths.
func WriteNomadConfig(st *State, stateDir string, httpPort int) (NomadFiles, error) {
	f := nomadFiles(stateDir)
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return f, fmt.Errorf("agent: state dir: %w", err)
	}
	f = nomadFiles(abs)
	hcl, err := NomadConfig(st, abs, httpPort).HCL()
	if err != nil {
		return f, fmt.Errorf("agent: %w", err)
	}
	if err := os.MkdirAll(f.DataDir, 0o700); err != nil {
		return f, fmt.Errorf("agent: nomad data dir: %w", err)
	}
	if err := writeFile(f.ConfigPath, []byte(hcl)); err != nil {
		return f, err
	}
	if err := writeFile(f.EnvPath, []byte(nomadclient.IntroEnvFile(st.Join.Nomad.IntroToken))); err != nil {
		return f, err
	}
	return f, nil
}

// startNomad writes the client's configuration and starts supervising it.
func (a *Agent) startNomad() (*nomadclient.Supervisor, error) {
	port := a.cfg.NomadHTTPPort
	if port == 0 {
		port = nomadclient.DefaultHTTPPort
	}
	f, err := WriteNomadConfig(a.state, a.cfg.StateDir, port)
	if err != nil {
		return nil, err
	}
	sup, err := nomadclient.StartSupervisor(nomadclient.SupervisorConfig{
		Binary:     a.cfg.NomadBinary,
		ConfigPath: f.ConfigPath,
		Env:        []string{nomadclient.IntroTokenEnv + "=" + a.state.Join.Nomad.IntroToken},
		StderrPath: f.StderrPath,
		DataDir:    f.DataDir,
		Logger:     a.log,
	})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return sup, nil
}
