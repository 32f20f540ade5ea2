package controlplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
)

// restartGrace is how long Restart waits for a component to stop before it ends it.
const restartGrace = 20 * time.Second

// restarted is a component this package started again after envtest had started it first.
type restarted struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// Restart stops etcd or kube-apiserver with SIGTERM and starts it again with the same command
// line, environment and data, as an upgrade or a node reboot would. It returns once the API
// server answers /readyz again. Linux only: it reads the running component from /proc.
func (cp *ControlPlane) Restart(ctx context.Context, component string) error {
	if component != "etcd" && component != "kube-apiserver" {
		return fmt.Errorf("cannot restart %q: only etcd and kube-apiserver", component)
	}
	cp.mu.Lock()
	prev := cp.restarted[component]
	cp.mu.Unlock()
	pid := 0
	if prev != nil {
		pid = prev.cmd.Process.Pid
	} else {
		var err error
		if pid, err = childNamed(component); err != nil {
			return err
		}
	}
	args, err := procList(pid, "cmdline")
	if err != nil {
		return err
	}
	env, err := procList(pid, "environ")
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stopping %s: %w", component, err)
	}
	// As the kubelet does: a grace period, then the end. SIGQUIT first, so that a Go component
	// that hangs in its shutdown writes where to its log.
	if err := waitGone(pid, prev, restartGrace); err != nil {
		_ = syscall.Kill(pid, syscall.SIGQUIT)
		if err := waitGone(pid, prev, 5*time.Second); err != nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			_ = waitGone(pid, prev, time.Minute)
		}
	}

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	dieWithParent(cmd)
	if cp.output != nil {
		cmd.Stdout, cmd.Stderr = cp.output, cp.output
	}
	onStarterThread(func() { err = cmd.Start() })
	if err != nil {
		return fmt.Errorf("starting %s again: %w", component, err)
	}
	r := &restarted{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(r.done) }()
	cp.mu.Lock()
	cp.restarted[component] = r
	cp.mu.Unlock()
	return cp.waitReady(ctx, 2*time.Minute)
}

// waitReady polls the API server's /readyz until it answers 200.
func (cp *ControlPlane) waitReady(ctx context.Context, timeout time.Duration) error {
	cfg := rest.CopyConfig(cp.Config)
	cfg.Timeout = 2 * time.Second
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+"/readyz", nil)
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the API server is not ready %v after the restart", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stopRestarted stops a restarted component, if any.
func (cp *ControlPlane) stopRestarted(component string) error {
	cp.mu.Lock()
	r := cp.restarted[component]
	cp.mu.Unlock()
	if r == nil {
		return nil
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
		return nil
	case <-time.After(time.Minute):
		_ = r.cmd.Process.Kill()
		<-r.done
		return fmt.Errorf("%s did not stop within a minute", component)
	}
}

// childNamed finds the process this one started under the name comm.
func childNamed(comm string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces, so split after its closing parenthesis.
		open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
		if open < 0 || end < open {
			continue
		}
		fields := strings.Fields(string(stat[end+1:]))
		if len(fields) < 2 || string(stat[open+1:end]) != comm {
			continue
		}
		if ppid, _ := strconv.Atoi(fields[1]); ppid == self {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no %s started by this process", comm)
}

// procList reads a NUL-separated list of /proc/<pid>/<name>.
func procList(pid int, name string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), name))
	if err != nil {
		return nil, err
	}
	list := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
	if len(list) == 0 || list[0] == "" {
		return nil, fmt.Errorf("/proc/%d/%s is empty", pid, name)
	}
	return list, nil
}

// waitGone waits until pid has exited: through prev when this package started it, otherwise
// until /proc no longer shows it running (envtest reaps what it started).
func waitGone(pid int, prev *restarted, timeout time.Duration) error {
	if prev != nil {
		select {
		case <-prev.done:
			return nil
		case <-time.After(timeout):
			return errors.New("still running")
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			return nil
		}
		if end := bytes.LastIndexByte(stat, ')'); end > 0 && bytes.HasPrefix(bytes.TrimSpace(stat[end+1:]), []byte("Z")) {
			return nil // exited, not reaped yet
		}
		if time.Now().After(deadline) {
			return errors.New("still running")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
