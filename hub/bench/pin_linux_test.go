package bench

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"
)

// Nomad and PostgreSQL are the benchmark's children: pinning the benchmark
// to CPU 1 must not drag Nomad off CPU 0 (it once did, and "-pin" ran
// everything on one CPU).
func TestPinSplitKeepsNomadApart(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Fatalf("this test needs two CPUs; the machine has %d", runtime.NumCPU())
	}
	start := func() int {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd.Process.Pid
	}
	nomad, postgres := start(), start()
	all := fmt.Sprintf("0-%d", runtime.NumCPU()-1)
	t.Cleanup(func() {
		if err := pinTree(os.Getpid(), all); err != nil {
			t.Error(err)
		}
	})
	if err := pinSplit(nomad, postgres); err != nil {
		t.Fatal(err)
	}
	for pid, want := range map[int]string{nomad: "0", postgres: "1", os.Getpid(): "1"} {
		if got, err := allowedCPUs(pid); err != nil || got != want {
			t.Errorf("process %d may run on CPUs %q (%v), want %q", pid, got, err, want)
		}
	}
}
