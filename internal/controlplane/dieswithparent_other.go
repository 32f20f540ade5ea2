//go:build !linux

package controlplane

import (
	"fmt"
	"os"
	"os/exec"
)

// Only Linux has a parent-death signal: elsewhere the components outlive a test binary that
// dies without calling Stop.
const dieWithParentSupported = false

func dieWithParent(*exec.Cmd) {}

func execDyingWithParent(path string, _, _ []string, _ int) {
	fmt.Fprintf(os.Stderr, "%s: components are executed directly on this platform\n", path)
	os.Exit(2)
}
