package node

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// Usage is what one container's process used.
type Usage struct {
	Namespace, Pod, Container string
	Job                       string // label training.kubeflow.org/job-name
	PeakRSSBytes              int64
	RequestBytes              int64
	LimitBytes                int64
	ExitCode                  int32
	Reason                    string
}

// provider is virtual-kubelet's PodLifecycleHandler: each pod is a
// goroutine that runs its init containers, then its containers, as
// processes, and publishes every status change through notify.
type provider struct {
	client  kubernetes.Interface
	dir     string
	images  Images
	env     []string
	log     *slog.Logger
	wg      sync.WaitGroup
	notifyF func(*corev1.Pod)

	mu    sync.Mutex
	pods  map[string]*podState
	ports map[string]int // namespace/MASTER_ADDR → the job's rewritten MASTER_PORT
	usage []Usage
}

type podState struct {
	mu     sync.Mutex
	pod    *corev1.Pod
	procs  map[string]*process
	cancel context.CancelFunc
	done   chan struct{}
}

func key(ns, name string) string { return ns + "/" + name }

func (p *provider) NotifyPods(_ context.Context, f func(*corev1.Pod)) { p.notifyF = f }

func (p *provider) publish(ps *podState) {
	ps.mu.Lock()
	pod := ps.pod.DeepCopy()
	ps.mu.Unlock()
	if p.notifyF != nil {
		p.notifyF(pod)
	}
}

func (p *provider) CreatePod(ctx context.Context, pod *corev1.Pod) error {
	pod = pod.DeepCopy()
	now := metav1.Now()
	pod.Status = corev1.PodStatus{
		Phase: corev1.PodPending, HostIP: "127.0.0.1", PodIP: "127.0.0.1",
		PodIPs: []corev1.PodIP{{IP: "127.0.0.1"}}, StartTime: &now,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodInitialized, Status: corev1.ConditionFalse, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: now},
		},
	}
	for _, c := range pod.Spec.InitContainers {
		pod.Status.InitContainerStatuses = append(pod.Status.InitContainerStatuses, waiting(c, "PodInitializing", ""))
	}
	for _, c := range pod.Spec.Containers {
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, waiting(c, "PodInitializing", ""))
	}
	rctx, cancel := context.WithCancel(context.Background())
	ps := &podState{pod: pod, procs: map[string]*process{}, cancel: cancel, done: make(chan struct{})}
	p.mu.Lock()
	p.pods[key(pod.Namespace, pod.Name)] = ps
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(ps.done)
		p.run(rctx, ps)
	}()
	p.publish(ps)
	return nil
}

func waiting(c corev1.Container, reason, msg string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: c.Name, Image: c.Image, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}
}

// UpdatePod has nothing to do: what may change in a running pod's spec
// (images, deadlines) the node does not act on.
func (p *provider) UpdatePod(context.Context, *corev1.Pod) error { return nil }

// DeletePod stops the pod's processes (SIGTERM, then SIGKILL after the
// grace period, at most 10 s) and reports every container terminated.
func (p *provider) DeletePod(ctx context.Context, pod *corev1.Pod) error {
	p.mu.Lock()
	ps, ok := p.pods[key(pod.Namespace, pod.Name)]
	p.mu.Unlock()
	if !ok {
		return errdefs.NotFoundf("pod %s/%s is not on this node", pod.Namespace, pod.Name)
	}
	ps.cancel()
	<-ps.done
	ps.mu.Lock()
	now := metav1.Now()
	for i := range ps.pod.Status.ContainerStatuses {
		cs := &ps.pod.Status.ContainerStatuses[i]
		if cs.State.Terminated == nil {
			cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "Error", Message: "pod deleted", FinishedAt: now}}
		}
		cs.Ready = false
	}
	if ps.pod.Status.Phase != corev1.PodSucceeded && ps.pod.Status.Phase != corev1.PodFailed {
		ps.pod.Status.Phase = corev1.PodFailed
	}
	ps.mu.Unlock()
	p.publish(ps)
	p.mu.Lock()
	delete(p.pods, key(pod.Namespace, pod.Name))
	p.mu.Unlock()
	return nil
}

func (p *provider) GetPod(_ context.Context, ns, name string) (*corev1.Pod, error) {
	p.mu.Lock()
	ps, ok := p.pods[key(ns, name)]
	p.mu.Unlock()
	if !ok {
		return nil, errdefs.NotFoundf("pod %s/%s is not on this node", ns, name)
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.pod.DeepCopy(), nil
}

func (p *provider) GetPodStatus(ctx context.Context, ns, name string) (*corev1.PodStatus, error) {
	pod, err := p.GetPod(ctx, ns, name)
	if err != nil {
		return nil, err
	}
	return &pod.Status, nil
}

func (p *provider) GetPods(context.Context) ([]*corev1.Pod, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*corev1.Pod
	for _, ps := range p.pods {
		ps.mu.Lock()
		out = append(out, ps.pod.DeepCopy())
		ps.mu.Unlock()
	}
	return out, nil
}

// update changes the pod's status under its lock and publishes it.
func (p *provider) update(ps *podState, f func(st *corev1.PodStatus)) {
	ps.mu.Lock()
	f(&ps.pod.Status)
	ps.mu.Unlock()
	p.publish(ps)
}

func setCondition(st *corev1.PodStatus, typ corev1.PodConditionType, v corev1.ConditionStatus) {
	for i := range st.Conditions {
		if st.Conditions[i].Type == typ && st.Conditions[i].Status != v {
			st.Conditions[i].Status, st.Conditions[i].LastTransitionTime = v, metav1.Now()
		}
	}
}

// run is one pod's life: volumes, init containers in order, then the
// containers side by side, restarted in place as the pod's restartPolicy
// says (the operator sets Never for restartPolicy ExitCode and replaces the
// pod itself).
func (p *provider) run(ctx context.Context, ps *podState) {
	pod := ps.pod.DeepCopy()
	dir := filepath.Join(p.dir, pod.Namespace, pod.Name+"-"+string(pod.UID))
	vols, err := p.volumes(ctx, pod, dir)
	if err != nil {
		p.log.Warn("pod volumes", "pod", pod.Name, "err", err)
		p.update(ps, func(st *corev1.PodStatus) {
			for i, c := range pod.Spec.Containers {
				st.ContainerStatuses[i] = waiting(c, "CreateContainerConfigError", err.Error())
			}
		})
		return
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		e, ok := p.runInit(ctx, ps, pod, c, dir, vols, i)
		if !ok {
			return
		}
		if e.Code != 0 {
			p.update(ps, func(st *corev1.PodStatus) { st.Phase = corev1.PodFailed })
			return
		}
	}
	p.update(ps, func(st *corev1.PodStatus) { setCondition(st, corev1.PodInitialized, corev1.ConditionTrue) })

	var wg sync.WaitGroup
	codes := make([]int32, len(pod.Spec.Containers))
	for i := range pod.Spec.Containers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = p.runContainer(ctx, ps, pod, &pod.Spec.Containers[i], dir, vols, i)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	phase := corev1.PodSucceeded
	for _, c := range codes {
		if c != 0 {
			phase = corev1.PodFailed
		}
	}
	p.update(ps, func(st *corev1.PodStatus) {
		st.Phase = phase
		setCondition(st, corev1.PodReady, corev1.ConditionFalse)
		setCondition(st, corev1.ContainersReady, corev1.ConditionFalse)
	})
}

// nslookup is the operator's init-pytorch command: it waits until the
// master's name resolves.
var nslookup = regexp.MustCompile(`nslookup ([a-z0-9.-]+)`)

// runInit runs init container i. The training operator's init-pytorch
// (a busybox shell looping on nslookup) has no binary here; it is run as
// what it checks: in this cluster a replica's name resolves once its
// headless Service exists, so the node waits for that Service.
func (p *provider) runInit(ctx context.Context, ps *podState, pod *corev1.Pod, c *corev1.Container, dir string, vols map[string]string, i int) (exit, bool) {
	setInit := func(s corev1.ContainerStatus) {
		p.update(ps, func(st *corev1.PodStatus) { st.InitContainerStatuses[i] = s })
	}
	if _, ok := p.images.Lookup(c.Image); !ok {
		m := nslookup.FindStringSubmatch(joinArgs(c))
		if m == nil {
			setInit(waiting(*c, "ErrImageNeverPull", "no local binary for image "+c.Image))
			<-ctx.Done()
			return exit{}, false
		}
		started := metav1.Now()
		setInit(corev1.ContainerStatus{Name: c.Name, Image: c.Image, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}})
		svc := m[1]
		for {
			_, err := p.client.CoreV1().Services(pod.Namespace).Get(ctx, svc, metav1.GetOptions{})
			if err == nil {
				break
			}
			if !apierrors.IsNotFound(err) && ctx.Err() == nil {
				p.log.Warn("init-pytorch: get service", "service", svc, "err", err)
			}
			select {
			case <-ctx.Done():
				return exit{}, false
			case <-time.After(500 * time.Millisecond):
			}
		}
		setInit(corev1.ContainerStatus{Name: c.Name, Image: c.Image, Ready: true, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: 0, Reason: "Completed", StartedAt: started, FinishedAt: metav1.Now()}}})
		return exit{Reason: "Completed"}, true
	}
	e, ok := p.runOnce(ctx, ps, pod, c, dir, vols, func(s corev1.ContainerStatus) { setInit(s) }, 0)
	return e, ok
}

func joinArgs(c *corev1.Container) string {
	s := ""
	for _, a := range append(append([]string{}, c.Command...), c.Args...) {
		s += a + " "
	}
	return s
}

// runContainer runs container i until it ends for good and returns its
// last exit code.
func (p *provider) runContainer(ctx context.Context, ps *podState, pod *corev1.Pod, c *corev1.Container, dir string, vols map[string]string, i int) int32 {
	set := func(s corev1.ContainerStatus) {
		p.update(ps, func(st *corev1.PodStatus) {
			st.ContainerStatuses[i] = s
			if s.State.Running != nil {
				st.Phase = corev1.PodRunning
				setCondition(st, corev1.ContainersReady, corev1.ConditionTrue)
				setCondition(st, corev1.PodReady, corev1.ConditionTrue)
			}
		})
	}
	for restarts := int32(0); ; restarts++ {
		e, ok := p.runOnce(ctx, ps, pod, c, dir, vols, set, restarts)
		if !ok {
			return 137
		}
		switch pod.Spec.RestartPolicy {
		case corev1.RestartPolicyAlways:
		case corev1.RestartPolicyOnFailure:
			if e.Code == 0 {
				return 0
			}
		default:
			return e.Code
		}
		select {
		case <-ctx.Done():
			return e.Code
		case <-time.After(time.Second):
		}
	}
}

// runOnce starts c once, reports it running, waits for it and reports how
// it ended. ok is false when the pod was deleted (the process is stopped).
func (p *provider) runOnce(ctx context.Context, ps *podState, pod *corev1.Pod, c *corev1.Container, dir string, vols map[string]string, set func(corev1.ContainerStatus), restarts int32) (exit, bool) {
	bin, ok := p.images.Lookup(c.Image)
	if !ok {
		set(waiting(*c, "ErrImageNeverPull", "no local binary for image "+c.Image))
		<-ctx.Done()
		return exit{}, false
	}
	args, env, l, err := p.spec(pod, c, bin, dir, vols)
	if err != nil {
		set(waiting(*c, "CreateContainerConfigError", err.Error()))
		<-ctx.Done()
		return exit{}, false
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		set(waiting(*c, "CreateContainerError", err.Error()))
		<-ctx.Done()
		return exit{}, false
	}
	proc, err := start(bin, args, env, dir, filepath.Join(dir, "logs", c.Name+".log"), l)
	if err != nil {
		set(waiting(*c, "CreateContainerError", err.Error()))
		<-ctx.Done()
		return exit{}, false
	}
	ps.mu.Lock()
	ps.procs[c.Name] = proc
	ps.mu.Unlock()
	started := metav1.NewTime(proc.exit.Started)
	set(corev1.ContainerStatus{Name: c.Name, Image: c.Image, Ready: true, Started: ptr.To(true), RestartCount: restarts,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}})
	e, ok := proc.waitCtx(ctx)
	if !ok {
		grace := 10 * time.Second
		if s := pod.DeletionGracePeriodSeconds; s != nil && time.Duration(*s)*time.Second < grace {
			grace = time.Duration(*s) * time.Second
		}
		e = proc.stop(grace)
	}
	p.record(pod, c, l, e)
	term := corev1.ContainerStatus{Name: c.Name, Image: c.Image, RestartCount: restarts, Started: ptr.To(false),
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: e.Code, Signal: int32(e.Signal),
			Reason: e.Reason, StartedAt: started, FinishedAt: metav1.NewTime(e.Finished)}}}
	set(term)
	return e, ok
}

func (p *provider) record(pod *corev1.Pod, c *corev1.Container, l Limits, e exit) {
	u := Usage{Namespace: pod.Namespace, Pod: pod.Name, Container: c.Name, Job: pod.Labels["training.kubeflow.org/job-name"],
		PeakRSSBytes: e.PeakRSS, RequestBytes: l.RequestBytes, LimitBytes: l.MemoryBytes, ExitCode: e.Code, Reason: e.Reason}
	p.log.Info("container exited", "pod", pod.Name, "container", c.Name, "code", e.Code, "reason", e.Reason,
		"peakRSSMiB", e.PeakRSS>>20, "requestMiB", l.RequestBytes>>20)
	p.mu.Lock()
	p.usage = append(p.usage, u)
	p.mu.Unlock()
}

// spec is c's argv, environment and limits as a process on this node.
//
// Names: every pod runs on this node's loopback, so MASTER_ADDR (the
// PyTorchJob contract's only host name) becomes 127.0.0.1, and MASTER_PORT
// becomes a port the node allocates once per namespace/MASTER_ADDR, the
// same for every replica of the job and across its restarts, so that jobs
// side by side do not collide on the operator's fixed 23456.
func (p *provider) spec(pod *corev1.Pod, c *corev1.Container, bin, dir string, vols map[string]string) (args, env []string, l Limits, err error) {
	m, err := newMounts(c, vols)
	if err != nil {
		return nil, nil, l, err
	}
	if args, err = commandFor(c, bin); err != nil {
		return nil, nil, l, err
	}
	for i := range args {
		args[i] = m.rewrite(args[i])
	}
	tmp := filepath.Join(dir, "tmp")
	if d, ok := m.dir("/tmp"); ok {
		tmp = d
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, nil, l, err
	}
	env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + tmp, "HOSTNAME=" + pod.Name}
	env = append(env, p.env...)
	have := map[string]bool{}
	var masterAddr string
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			return nil, nil, l, fmt.Errorf("container %s: env %s: valueFrom was not resolved", c.Name, e.Name)
		}
		if e.Name == "MASTER_ADDR" {
			masterAddr = e.Value
		}
	}
	for _, e := range c.Env {
		v := m.rewrite(e.Value)
		switch e.Name {
		case "MASTER_ADDR":
			v = "127.0.0.1"
		case "MASTER_PORT":
			port, err := p.port(pod.Namespace + "/" + masterAddr)
			if err != nil {
				return nil, nil, l, err
			}
			v = strconv.Itoa(port)
		}
		have[e.Name] = true
		env = append(env, e.Name+"="+v)
	}
	l = limitsOf(c)
	env = append(env, l.env(func(k string) bool { return have[k] })...)
	return args, env, l, nil
}

func (p *provider) port(k string) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if port, ok := p.ports[k]; ok {
		return port, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("allocate MASTER_PORT for %s: %w", k, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p.ports[k] = port
	return port, nil
}

// volumes materialises the pod's volumes under dir/volumes/<name>:
// ConfigMaps and Secrets as one file per key (or per item), emptyDir as an
// empty directory. Any other kind is refused.
func (p *provider) volumes(ctx context.Context, pod *corev1.Pod, dir string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		d := filepath.Join(dir, "volumes", v.Name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		out[v.Name] = d
		var data map[string][]byte
		var items []corev1.KeyToPath
		switch {
		case v.EmptyDir != nil:
			continue
		case v.ConfigMap != nil:
			cm, err := p.client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("volume %s: configmap %s: %w", v.Name, v.ConfigMap.Name, err)
			}
			data = map[string][]byte{}
			for k, s := range cm.Data {
				data[k] = []byte(s)
			}
			for k, b := range cm.BinaryData {
				data[k] = b
			}
			items = v.ConfigMap.Items
		case v.Secret != nil:
			s, err := p.client.CoreV1().Secrets(pod.Namespace).Get(ctx, v.Secret.SecretName, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("volume %s: secret %s: %w", v.Name, v.Secret.SecretName, err)
			}
			data, items = s.Data, v.Secret.Items
		default:
			return nil, fmt.Errorf("volume %s: only configMap, secret and emptyDir volumes run on this node", v.Name)
		}
		if len(items) == 0 {
			for k := range data {
				items = append(items, corev1.KeyToPath{Key: k, Path: k})
			}
		}
		for _, it := range items {
			b, ok := data[it.Key]
			if !ok {
				return nil, fmt.Errorf("volume %s: no key %q", v.Name, it.Key)
			}
			f := filepath.Join(d, filepath.Clean("/"+it.Path))
			if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
				return nil, err
			}
			if err := os.WriteFile(f, b, 0o644); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// signal sends sig to the process of container in pod.
func (p *provider) signal(ns, pod, container string, sig syscall.Signal) error {
	p.mu.Lock()
	ps, ok := p.pods[key(ns, pod)]
	p.mu.Unlock()
	if !ok {
		return fmt.Errorf("pod %s/%s is not on this node", ns, pod)
	}
	ps.mu.Lock()
	proc, ok := ps.procs[container]
	ps.mu.Unlock()
	if !ok {
		return fmt.Errorf("pod %s/%s: container %s has not started", ns, pod, container)
	}
	return proc.signal(sig)
}
