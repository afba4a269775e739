package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Images maps an image reference to the local binary that stands for its
// entrypoint. A reference matches exactly, or by its repository alone
// (without :tag or @digest), so a rendered digest need not be known when
// the binary is built.
type Images map[string]string

// Lookup returns the binary for image.
func (m Images) Lookup(image string) (string, bool) {
	if p, ok := m[image]; ok {
		return p, true
	}
	p, ok := m[repository(image)]
	return p, ok
}

// repository strips the digest and the tag from an image reference; a
// colon before the last slash is a registry port, not a tag.
func repository(image string) string {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndexByte(image, ':'); i > strings.LastIndexByte(image, '/') {
		image = image[:i]
	}
	return image
}

// mounts maps a container's mount paths onto the pod's volume directories.
type mounts []mount

type mount struct{ path, dir string }

// newMounts resolves c's volume mounts against vols (volume name →
// directory), longest mount path first so nested mounts win.
func newMounts(c *corev1.Container, vols map[string]string) (mounts, error) {
	var m mounts
	for _, vm := range c.VolumeMounts {
		dir, ok := vols[vm.Name]
		if !ok {
			return nil, fmt.Errorf("container %s: volume mount %s: no volume %q in the pod", c.Name, vm.MountPath, vm.Name)
		}
		if vm.SubPath != "" {
			dir = filepath.Join(dir, vm.SubPath)
		}
		m = append(m, mount{path: filepath.Clean(vm.MountPath), dir: dir})
	}
	sort.Slice(m, func(i, j int) bool { return len(m[i].path) > len(m[j].path) })
	return m, nil
}

// rewrite maps every occurrence of a mount path in s that starts a path
// (at the start of s or after '=', ':' or ',') onto its directory: a process
// has no mount namespace, so the container's view of its files must be
// spelt as the node's paths in its arguments and environment.
func (m mounts) rewrite(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		matched := false
		if i == 0 || strings.ContainsRune("=:,", rune(s[i-1])) {
			for _, mt := range m {
				rest := s[i:]
				if strings.HasPrefix(rest, mt.path) && (len(rest) == len(mt.path) || strings.ContainsRune("/:,", rune(rest[len(mt.path)]))) {
					b.WriteString(mt.dir)
					i += len(mt.path)
					matched = true
					break
				}
			}
		}
		if !matched {
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String()
}

// dir returns the node directory that path (a container path) maps to, if
// a mount covers it.
func (m mounts) dir(path string) (string, bool) {
	for _, mt := range m {
		if path == mt.path || strings.HasPrefix(path, mt.path+"/") {
			return mt.dir + strings.TrimPrefix(path, mt.path), true
		}
	}
	return "", false
}

// Limits are what the node enforces on a container's process.
type Limits struct {
	// MemoryBytes is the memory limit; 0 means none.
	MemoryBytes int64
	// RequestBytes is the memory request, the denominator of the
	// used/requested ratio the node records.
	RequestBytes int64
	// CPUMilli is the CPU limit in millicores; 0 means none.
	CPUMilli int64
}

func limitsOf(c *corev1.Container) Limits {
	var l Limits
	if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		l.MemoryBytes = q.Value()
	}
	if q, ok := c.Resources.Requests[corev1.ResourceMemory]; ok {
		l.RequestBytes = q.Value()
	} else {
		l.RequestBytes = l.MemoryBytes // the API server defaults requests to limits
	}
	if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		l.CPUMilli = q.MilliValue()
	}
	return l
}

// limitEnv is what the Go runtime reads in place of a cgroup: GOMAXPROCS
// from the CPU limit (rounded up) and GOMEMLIMIT at 90% of the memory limit,
// each only when the pod does not set it itself.
func (l Limits) env(have func(string) bool) []string {
	var env []string
	if l.CPUMilli > 0 && !have("GOMAXPROCS") {
		env = append(env, "GOMAXPROCS="+strconv.FormatInt(max(1, (l.CPUMilli+999)/1000), 10))
	}
	if l.MemoryBytes > 0 && !have("GOMEMLIMIT") {
		env = append(env, "GOMEMLIMIT="+strconv.FormatInt(l.MemoryBytes/10*9, 10))
	}
	return env
}

// exit is how a container's process ended.
type exit struct {
	Code     int32
	Reason   string // Completed, Error or OOMKilled, as the kubelet reports
	Signal   syscall.Signal
	PeakRSS  int64 // bytes, from the kernel's rusage of the child
	Started  time.Time
	Finished time.Time
}

// process is one running container.
type process struct {
	cmd    *exec.Cmd
	limits Limits
	log    *os.File

	mu        sync.Mutex
	oomKilled bool
	done      chan struct{}
	exit      exit
}

// start runs path with args and env in dir, writing its output to logPath.
// The process leads its own process group, so a signal reaches everything
// it started.
func start(path string, args, env []string, dir, logPath string, l Limits) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Env, cmd.Dir = env, dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &process{cmd: cmd, limits: l, log: logf, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	p.exit.Started = time.Now()
	go p.wait()
	if l.MemoryBytes > 0 {
		go p.watchMemory()
	}
	return p, nil
}

func (p *process) wait() {
	err := p.cmd.Wait()
	p.log.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.exit.Finished = time.Now()
	if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		p.exit.PeakRSS = ru.Maxrss << 10 // KiB on Linux
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		p.exit.Code, p.exit.Reason = 0, "Completed"
	case errors.As(err, &ee):
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			// What a container runtime reports for a signalled init process.
			p.exit.Signal = ws.Signal()
			p.exit.Code = 128 + int32(ws.Signal())
		} else {
			p.exit.Code = int32(ws.ExitStatus())
		}
		p.exit.Reason = "Error"
	default:
		p.exit.Code, p.exit.Reason = 128, "Error"
	}
	if p.oomKilled {
		p.exit.Reason = "OOMKilled"
	}
	close(p.done)
}

// watchMemory is the node's OOM killer: no memory cgroup is writable on
// these machines (cgroup v1, and cgroup2 without the memory controller), and
// RLIMIT_AS would count the Go runtime's address-space reservations, far
// above what is resident. So the node samples the resident set and kills
// the process group with SIGKILL once it passes the limit, as the kernel's
// memcg OOM killer would, and reports OOMKilled.
func (p *process) watchMemory() {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		rss, err := residentBytes(p.cmd.Process.Pid)
		if err != nil || rss <= p.limits.MemoryBytes {
			continue
		}
		p.mu.Lock()
		p.oomKilled = true
		p.mu.Unlock()
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		return
	}
}

// residentBytes is VmRSS of pid.
func residentBytes(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	_, rest, ok := bytes.Cut(b, []byte("\nVmRSS:"))
	if !ok {
		return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(string(line)), " kB"), 10, 64)
	return kb << 10, err
}

// signal sends sig to the process group.
func (p *process) signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

// stop sends SIGTERM, then SIGKILL after grace, and waits for the exit.
func (p *process) stop(grace time.Duration) exit {
	_ = p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.signal(syscall.SIGKILL)
		<-p.done
	}
	return p.result()
}

func (p *process) result() exit {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exit
}

// commandFor is the argv of container c run from binary: the binary stands
// for the image's entrypoint, so a command, when the pod sets one, must
// name that entrypoint (by base name); its arguments follow.
func commandFor(c *corev1.Container, binary string) ([]string, error) {
	args := slices.Clone(c.Args)
	if len(c.Command) > 0 {
		if filepath.Base(c.Command[0]) != filepath.Base(binary) {
			return nil, fmt.Errorf("container %s: command %q: the image's binary here is %s, and no other program is in it", c.Name, c.Command[0], filepath.Base(binary))
		}
		args = append(slices.Clone(c.Command[1:]), args...)
	}
	return args, nil
}

// waitCtx waits for p to exit or ctx to end.
func (p *process) waitCtx(ctx context.Context) (exit, bool) {
	select {
	case <-p.done:
		return p.result(), true
	case <-ctx.Done():
		return exit{}, false
	}
}
