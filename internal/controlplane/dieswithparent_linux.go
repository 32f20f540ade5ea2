package controlplane

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
)

const dieWithParentSupported = true

// dieWithParent makes the kernel kill cmd's process when the thread that starts it ends.
func dieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// execDyingWithParent asks the kernel to kill this process when its parent goes, then executes
// path in its place (the signal survives exec). It returns only by exiting.
func execDyingWithParent(path string, args, env []string, parent int) {
	// The signal is a property of the thread that sets it, which must be the one that executes.
	runtime.LockOSThread()
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0); errno != 0 {
		fmt.Fprintf(os.Stderr, "prctl(PR_SET_PDEATHSIG): %v\n", errno)
		os.Exit(2)
	}
	if os.Getppid() != parent {
		os.Exit(2) // the parent went before the signal was set
	}
	err := syscall.Exec(path, append([]string{path}, args...), env)
	fmt.Fprintf(os.Stderr, "executing %s: %v\n", path, err)
	os.Exit(127)
}
