// Package controlplane starts a real Kubernetes control plane on this machine: etcd,
// kube-apiserver and, optionally, kube-controller-manager, from the binaries that
// hack/build-control-plane.sh compiles. Test suites, `make run` and the benchmark harness use it.
//
// envtest starts etcd and the API server; kube-controller-manager is started beside them
// because envtest runs no controllers: without it owner references never cascade, deleted
// namespaces stay Terminating and ResourceQuota status is never computed.
//
// The components die with the process that started them, however it ends (a panic, a test
// timeout, SIGKILL), on Linux: the kernel kills each one when its parent goes (PR_SET_PDEATHSIG).
// kube-controller-manager is started here with that signal set. envtest starts etcd and
// kube-apiserver itself and offers no hook for it, so Start points envtest at links named etcd
// and kube-apiserver to this very binary: started under such a name with componentEnv set, the
// binary's init sets the signal on itself and executes the real component in its place.
package controlplane

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// DefaultControllers are the kube-controller-manager controllers the operator relies on; the
// built-in admin, edit and view ClusterRoles it binds are empty until clusterrole-aggregation runs.
var DefaultControllers = []string{"namespace", "garbagecollector", "resourcequota", "clusterrole-aggregation"}

// Options configure a control plane.
type Options struct {
	// BinDir holds kube-apiserver, etcd and kube-controller-manager. Defaults to KUBEBUILDER_ASSETS.
	BinDir string
	// DataDir keeps etcd's data between starts when set; a temporary directory is used otherwise.
	DataDir string
	// APIServerPort fixes the API server's secure port; 0 picks a free one.
	APIServerPort int
	// CRDDirectoryPaths are installed before Start returns.
	CRDDirectoryPaths []string
	// WebhookInstallOptions are passed to envtest, which serves them on a local port.
	WebhookInstallOptions envtest.WebhookInstallOptions
	// ControllerManager starts kube-controller-manager with Controllers (DefaultControllers if empty).
	ControllerManager bool
	Controllers       []string
	// APIServerArgs are appended to the API server's flags, e.g. "audit-log-path".
	APIServerArgs map[string][]string
	// Output receives the components' logs; nil discards them unless
	// KUBEBUILDER_ATTACH_CONTROL_PLANE_OUTPUT=true.
	Output *os.File
}

// ControlPlane is a running control plane.
type ControlPlane struct {
	// Env is the envtest environment behind it.
	Env *envtest.Environment
	// Config connects as a cluster admin (system:masters).
	Config *rest.Config

	kcm    *exec.Cmd
	kcmDir string
	done   chan error
	output *os.File

	mu        sync.Mutex
	restarted map[string]*restarted // by component, see Restart
}

// Start starts etcd and kube-apiserver, installs the CRDs and, if asked, starts
// kube-controller-manager. The caller must call Stop.
func Start(opts Options) (cp *ControlPlane, err error) {
	if opts.BinDir == "" {
		opts.BinDir = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if opts.BinDir == "" {
		return nil, errors.New("no control plane binaries: run hack/build-control-plane.sh and set KUBEBUILDER_ASSETS to the directory it prints")
	}
	onStarterThread(func() { cp, err = start(opts) })
	return cp, err
}

func start(opts Options) (*ControlPlane, error) {
	env := &envtest.Environment{
		BinaryAssetsDirectory:    opts.BinDir,
		CRDDirectoryPaths:        opts.CRDDirectoryPaths,
		ErrorIfCRDPathMissing:    len(opts.CRDDirectoryPaths) > 0,
		WebhookInstallOptions:    opts.WebhookInstallOptions,
		ControlPlaneStartTimeout: time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	env.ControlPlane.Etcd = &envtest.Etcd{DataDir: opts.DataDir}
	api := env.ControlPlane.GetAPIServer()
	if dieWithParentSupported {
		links, err := linkComponents(opts.BinDir)
		if err != nil {
			return nil, err
		}
		// The links are needed only while envtest executes the components, all within Start.
		defer os.RemoveAll(links)
		env.ControlPlane.Etcd.Path = filepath.Join(links, "etcd")
		api.Path = filepath.Join(links, "kube-apiserver")
	}
	if opts.APIServerPort != 0 {
		api.SecurePort = opts.APIServerPort
	}
	args := api.Configure()
	for k, vs := range opts.APIServerArgs {
		args.Set(k, vs...)
	}
	if opts.Output != nil {
		api.Out, api.Err = opts.Output, opts.Output
		env.ControlPlane.Etcd.Out, env.ControlPlane.Etcd.Err = opts.Output, opts.Output
	}

	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting etcd and kube-apiserver from %s: %w", opts.BinDir, err)
	}
	cp := &ControlPlane{Env: env, Config: cfg, output: opts.Output, restarted: map[string]*restarted{}}
	if opts.ControllerManager {
		controllers := opts.Controllers
		if len(controllers) == 0 {
			controllers = DefaultControllers
		}
		if err := cp.startControllerManager(opts.BinDir, controllers, opts.Output); err != nil {
			_ = env.Stop()
			return nil, err
		}
	}
	return cp, nil
}

func (cp *ControlPlane) startControllerManager(binDir string, controllers []string, out *os.File) error {
	user, err := cp.Env.ControlPlane.AddUser(envtest.User{Name: "system:kube-controller-manager", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding a user for kube-controller-manager: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return err
	}
	cp.kcmDir, err = os.MkdirTemp("", "kube-controller-manager-")
	if err != nil {
		return err
	}
	kubeconfigPath := filepath.Join(cp.kcmDir, "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		return err
	}
	args := []string{
		"--kubeconfig=" + kubeconfigPath,
		"--controllers=" + strings.Join(controllers, ","),
		"--use-service-account-credentials=false",
		"--leader-elect=false",
		"--secure-port=0",
		"--concurrent-namespace-syncs=4",
		"--concurrent-gc-syncs=10",
	}
	cmd := exec.Command(filepath.Join(binDir, "kube-controller-manager"), args...)
	dieWithParent(cmd)
	if out != nil {
		cmd.Stdout, cmd.Stderr = out, out
	} else if attach, _ := strconv.ParseBool(os.Getenv("KUBEBUILDER_ATTACH_CONTROL_PLANE_OUTPUT")); attach {
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting kube-controller-manager: %w", err)
	}
	cp.kcm = cmd
	cp.done = make(chan error, 1)
	go func() { cp.done <- cmd.Wait() }()
	return nil
}

// componentEnv, set while Start runs, says where the real binaries are and which process
// started them: "<pid>:<directory>".
const componentEnv = "ORG_OPERATOR_CONTROL_PLANE_COMPONENT"

// envtestComponents are the components envtest starts, through links to this binary.
var envtestComponents = []string{"etcd", "kube-apiserver"}

func init() {
	spec, ok := os.LookupEnv(componentEnv)
	name := filepath.Base(os.Args[0])
	if !ok || !slices.Contains(envtestComponents, name) {
		return
	}
	pid, dir, _ := strings.Cut(spec, ":")
	parent, err := strconv.Atoi(pid)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s=%q: %v\n", componentEnv, spec, err)
		os.Exit(2)
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, componentEnv+"=") })
	execDyingWithParent(filepath.Join(dir, name), os.Args[1:], env, parent)
}

// linkComponents makes a directory of links named after envtestComponents to this binary, and
// sets componentEnv until Start returns.
func linkComponents(binDir string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "org-operator-control-plane-")
	if err != nil {
		return "", err
	}
	for _, name := range envtestComponents {
		if err := os.Symlink(self, filepath.Join(dir, name)); err != nil {
			_ = os.RemoveAll(dir)
			return "", err
		}
	}
	abs, err := filepath.Abs(binDir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	// Start runs on the starter thread, one at a time, so no other Start sees this.
	if err := os.Setenv(componentEnv, fmt.Sprintf("%d:%s", os.Getpid(), abs)); err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// The kernel sends the parent-death signal when the thread that started the child ends, not the
// process, and Go ends a thread when a goroutine locked to it exits. Components are therefore
// started from one goroutine locked to its thread for the life of the process.
var starter = sync.OnceValue(func() chan<- func() {
	fns := make(chan func())
	go func() {
		runtime.LockOSThread() // never unlocked: the thread lives as long as the process
		for fn := range fns {
			fn()
		}
	}()
	return fns
})

// onStarterThread runs fn on the starter thread and waits for it.
func onStarterThread(fn func()) {
	done := make(chan struct{})
	starter() <- func() {
		defer close(done)
		defer os.Unsetenv(componentEnv)
		fn()
	}
	<-done
}

// AddUser provisions a user that authenticates with a client certificate and returns a config for it.
func (cp *ControlPlane) AddUser(name string, groups ...string) (*rest.Config, error) {
	u, err := cp.Env.ControlPlane.AddUser(envtest.User{Name: name, Groups: groups}, cp.Config)
	if err != nil {
		return nil, err
	}
	return u.Config(), nil
}

// AdminKubeconfig returns a kubeconfig for a cluster admin.
func (cp *ControlPlane) AdminKubeconfig() ([]byte, error) {
	u, err := cp.Env.ControlPlane.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	return u.KubeConfig()
}

// Stop stops kube-controller-manager, the API server and etcd.
func (cp *ControlPlane) Stop() error {
	var errs []error
	if cp.kcm != nil && cp.kcm.Process != nil {
		_ = cp.kcm.Process.Signal(os.Interrupt)
		select {
		case <-cp.done:
		case <-time.After(10 * time.Second):
			_ = cp.kcm.Process.Kill()
			<-cp.done
		}
	}
	if cp.kcmDir != "" {
		errs = append(errs, os.RemoveAll(cp.kcmDir))
	}
	// A component started again by Restart is stopped in envtest's order: the API server, then etcd.
	errs = append(errs, cp.stopRestarted("kube-apiserver"), cp.Env.Stop(), cp.stopRestarted("etcd"))
	return errors.Join(errs...)
}

// RepoRoot finds the repository, where config/ and bin/ are: the directory holding go.mod, from
// the working directory up.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod in the working directory or above it: run this from the repository")
		}
		dir = parent
	}
}
