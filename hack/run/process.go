package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// child is a running manager.
type child struct {
	name string // "the manager", or a replica's name
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited; err is set then
	err  error
}

// startManager starts the manager binary with its output on out, or on ours if nil. It runs in
// its own process group so that Ctrl-C in the terminal reaches only this program, which then
// stops the manager exactly once and in order (a second signal makes controller-runtime exit at once).
func startManager(name, path string, args, env []string, out io.Writer) (*child, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if out != nil {
		cmd.Stdout, cmd.Stderr = out, out
	}
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	logf("Started %s (pid %d): %s %v", name, cmd.Process.Pid, path, args)
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
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
	logf("Stopping %s", c.name)
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(timeout):
		logf("Killing %s: it did not stop within %v", c.name, timeout)
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
