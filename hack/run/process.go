package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// child is the running manager.
type child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited; err is set then
	err  error
}

// startManager starts the manager binary with its output on ours. It runs in its own process
// group so that Ctrl-C in the terminal reaches only this program, which then stops the manager
// exactly once and in order (a second signal makes controller-runtime exit at once).
func startManager(path string, args, env []string) (*child, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the manager: %w", err)
	}
	logf("Started the manager (pid %d): %s %v", cmd.Process.Pid, path, args)
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// stop sends SIGTERM and kills the process if it has not exited after timeout.
func (c *child) stop(timeout time.Duration) {
	select {
	case <-c.done:
		return
	default:
	}
	logf("Stopping the manager")
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(timeout):
		logf("The manager did not stop within %v; killing it", timeout)
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// exitCode turns the error of exec.Cmd.Wait into a shell-style exit code (128+n for signal n).
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return 1
	}
	if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return exitErr.ExitCode()
}
