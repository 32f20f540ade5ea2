package controlplane_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orgoperator/org-operator/internal/controlplane"
)

// helperEnv makes TestHelperControlPlane start a control plane and wait to be killed.
const helperEnv = "ORG_OPERATOR_TEST_CONTROL_PLANE_HELPER"

// TestHelperControlPlane runs only as the child process of TestComponentsDieWithTheirProcess.
func TestHelperControlPlane(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("runs as the child of TestComponentsDieWithTheirProcess")
	}
	if _, err := controlplane.Start(controlplane.Options{ControllerManager: true}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ready")
	time.Sleep(time.Hour) // until killed; Stop is never called
}

// A test binary that dies without calling Stop (a panic, a timeout, SIGKILL) takes etcd,
// kube-apiserver and kube-controller-manager with it.
func TestComponentsDieWithTheirProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the parent-death signal is Linux's")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperControlPlane$")
	// The components' temporary directories land here, and go with the test.
	cmd.Env = append(os.Environ(), helperEnv+"=1", "TMPDIR="+t.TempDir())
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			if lines.Text() == "ready" {
				ready <- true
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			_ = cmd.Wait()
			t.Fatal("the helper process ended before its control plane was up")
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("the helper process's control plane did not come up in 2 minutes")
	}

	components := children(t, cmd.Process.Pid)
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
		if _, ok := components[name]; !ok {
			_ = cmd.Process.Kill()
			t.Fatalf("no %s among the helper's children: %v", name, components)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	deadline := time.Now().Add(10 * time.Second)
	for name, p := range components {
		for alive(p) {
			if time.Now().After(deadline) {
				t.Fatalf("%s (pid %d) still runs after the helper was killed", name, p.pid)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

type process struct {
	pid       int
	startTime string
}

// children returns the running children of a process by the name of their binary.
func children(t *testing.T, parent int) map[string]process {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]process{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fields, ok := stat(pid)
		if !ok || fields[1] != strconv.Itoa(parent) {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		argv0, _, _ := strings.Cut(string(cmdline), "\x00")
		out[filepath.Base(argv0)] = process{pid: pid, startTime: fields[19]}
	}
	return out
}

// alive says whether p still runs: it exists, is not a zombie, and is the same process.
func alive(p process) bool {
	fields, ok := stat(p.pid)
	return ok && fields[0] != "Z" && fields[19] == p.startTime
}

// stat returns the fields of /proc/<pid>/stat after the command name: state, ppid, ...
func stat(pid int) ([]string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil, false
	}
	fields := strings.Fields(string(b[i+1:]))
	return fields, len(fields) > 19
}
