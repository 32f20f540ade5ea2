package main

import "syscall"

// sysProcAttr puts the manager in its own process group, and has the kernel send it SIGTERM
// should this program die without stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
