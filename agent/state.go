package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spiceroute/spiceroute/agent/agentapi"
)

// The state directory (Config.StateDir, mode 0700) holds:
//
//	state.json        State: the hub, the join reply (without the agent
//	                  token), the offer and settings given at join (0600;
//	                  it holds the Nomad introduction token)
//	agent-token       the agent token, alone (0600)
//	nomad/            the Nomad client's data_dir
//	nomad-client.hcl  the Nomad client's configuration
//	nomad.log         the Nomad client's log (rotated by Nomad)
//	nomad-stderr.log  the Nomad client's standard error (start-up errors)
const (
	stateFile = "state.json"
	tokenFile = "agent-token"
)

// ErrNotJoined is returned by LoadState when the state directory holds no
// join: run `spice agent join` first.
var ErrNotJoined = errors.New("agent: this machine has not joined a hub (run `spice agent join` first)")

// State is what the agent keeps after joining.
type State struct {
	HubURL   string    `json:"hub_url"`
	JoinedAt time.Time `json:"joined_at"`
	// Join is the hub's join reply; its AgentToken is empty here (the
	// token is kept in its own file).
	Join      agentapi.JoinReply `json:"join"`
	Offer     agentapi.Offer     `json:"offer"`
	Benchmark agentapi.Benchmark `json:"benchmark"`
	Settings  Settings           `json:"settings"`
}

// Settings are the choices made at join that `spice agent run` keeps.
type Settings struct {
	// Windows is the availability spec (package windows), TimeZone its IANA
	// zone ("" for the machine's local time).
	Windows  string `json:"windows,omitempty"`
	TimeZone string `json:"time_zone,omitempty"`
	// NomadBinary and NomadHTTPPort are for the supervised Nomad client.
	NomadBinary   string `json:"nomad_binary,omitempty"`
	NomadHTTPPort int    `json:"nomad_http_port,omitempty"`
	// ManageNomad is false when the operator runs Nomad (-print-config).
	ManageNomad bool `json:"manage_nomad"`
}

// SaveState writes st and token to dir: the directory 0700, both files
// 0600, each replaced atomically.
func SaveState(dir string, st *State, token string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("agent: state dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("agent: state dir: %w", err)
	}
	saved := *st
	saved.Join.AgentToken = ""
	b, err := json.MarshalIndent(&saved, "", "  ")
	if err != nil {
		return fmt.Errorf("agent: state: %w", err)
	}
	if err := writeFile(filepath.Join(dir, tokenFile), []byte(token+"\n")); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, stateFile), append(b, '\n'))
}

// writeFile replaces path with data, mode 0600, through a temporary file
// so a crash leaves either the old or the new content.
func writeFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("agent: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("agent: write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("agent: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("agent: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("agent: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("agent: write %s: %w", path, err)
	}
	return nil
}

// LoadState reads the state and the agent token from dir. It refuses a
// token file that others can read.
func LoadState(dir string) (*State, string, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", ErrNotJoined
	}
	if err != nil {
		return nil, "", fmt.Errorf("agent: state: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, "", fmt.Errorf("agent: state %s: %w", filepath.Join(dir, stateFile), err)
	}
	path := filepath.Join(dir, tokenFile)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, "", fmt.Errorf("agent: agent token: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, "", fmt.Errorf("agent: agent token %s is readable by others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	tok, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("agent: agent token: %w", err)
	}
	token := strings.TrimSpace(string(tok))
	if token == "" || st.Join.MachineID == "" || st.HubURL == "" {
		return nil, "", fmt.Errorf("agent: state in %s is incomplete", dir)
	}
	return &st, token, nil
}
