package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"syscall"
	"time"

	vklog "github.com/virtual-kubelet/virtual-kubelet/log"
	vkslog "github.com/virtual-kubelet/virtual-kubelet/log/slog"
	vknode "github.com/virtual-kubelet/virtual-kubelet/node"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

// Config configures a Node. Name, Client, Dir and Images are required.
type Config struct {
	// Name is the Node object's name.
	Name   string
	Client kubernetes.Interface
	// Dir holds each pod's volumes, temporary directory and logs:
	// Dir/<namespace>/<pod>-<uid>/.
	Dir string
	// Images maps image references to local binaries.
	Images Images
	// Env is added to every process, before the container's own: what the
	// node's environment provides that a pod spec cannot name (for example
	// STORAGE_EMULATOR_HOST in place of workload identity).
	Env []string
	Log *slog.Logger
}

// Node is a running node: a Node object with a lease, kept Ready by
// virtual-kubelet's node controller; its pod controller, which hands the
// pods bound here to the provider; and a binder.
//
// Scheduling: the node binds every unscheduled pod that names the default
// scheduler to itself through the pods/binding subresource, as
// kube-scheduler would with a single feasible node. A real kube-scheduler
// would be one more ~10-minute cold build in the tier, for a decision that
// has one answer on a cluster of one node.
type Node struct {
	p      *provider
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start registers the node and runs it until Stop. It returns once the
// node is Ready and its pod controller has synced.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Name == "" || cfg.Client == nil || cfg.Dir == "" {
		return nil, errors.New("node: Name, Client and Dir are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	ctx, cancel := context.WithCancel(ctx)
	ctx = vklog.WithLogger(ctx, vkslog.FromSlog(cfg.Log.With("component", "virtual-kubelet")))
	n := &Node{cancel: cancel}
	n.p = &provider{client: cfg.Client, dir: cfg.Dir, images: cfg.Images, env: slices.Clone(cfg.Env),
		log: cfg.Log, pods: map[string]*podState{}, ports: map[string]int{}}

	nodeObj := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: cfg.Name, Labels: map[string]string{
			"kubernetes.io/hostname": cfg.Name, "kubernetes.io/os": "linux", "type": "virtual-kubelet"}},
		Status: corev1.NodeStatus{
			Phase: corev1.NodeRunning,
			Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("16"),
				corev1.ResourceMemory: resource.MustParse("64Gi"), corev1.ResourcePods: resource.MustParse("110")},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
				LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
		},
	}
	nodeObj.Status.Allocatable = nodeObj.Status.Capacity.DeepCopy()
	nc, err := vknode.NewNodeController(vknode.NewNaiveNodeProvider(), nodeObj, cfg.Client.CoreV1().Nodes(),
		vknode.WithNodeEnableLeaseV1(cfg.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease), vknode.DefaultLeaseDuration))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("node %s: %w", cfg.Name, err)
	}

	podInf := informers.NewSharedInformerFactoryWithOptions(cfg.Client, time.Minute, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", cfg.Name).String()
	}))
	other := informers.NewSharedInformerFactory(cfg.Client, time.Minute)
	eb := record.NewBroadcaster()
	eb.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cfg.Client.CoreV1().Events("")})
	pc, err := vknode.NewPodController(vknode.PodControllerConfig{
		PodClient:         cfg.Client.CoreV1(),
		PodInformer:       podInf.Core().V1().Pods(),
		EventRecorder:     eb.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: cfg.Name}),
		Provider:          n.p,
		ConfigMapInformer: other.Core().V1().ConfigMaps(),
		SecretInformer:    other.Core().V1().Secrets(),
		ServiceInformer:   other.Core().V1().Services(),
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("node %s: pod controller: %w", cfg.Name, err)
	}
	podInf.Start(ctx.Done())
	other.Start(ctx.Done())

	n.wg.Add(3)
	go func() {
		defer n.wg.Done()
		if err := nc.Run(ctx); err != nil && ctx.Err() == nil {
			cfg.Log.Error("node controller", "err", err)
		}
	}()
	go func() {
		defer n.wg.Done()
		select {
		case <-nc.Ready():
		case <-ctx.Done():
			return
		}
		if err := pc.Run(ctx, 4); err != nil && ctx.Err() == nil {
			cfg.Log.Error("pod controller", "err", err)
		}
	}()
	go func() {
		defer n.wg.Done()
		n.bind(ctx, cfg)
	}()
	go func() { <-ctx.Done(); eb.Shutdown() }()

	select {
	case <-pc.Ready():
		return n, nil
	case <-ctx.Done():
		n.Stop()
		return nil, fmt.Errorf("node %s: not ready: %w", cfg.Name, ctx.Err())
	case <-time.After(time.Minute):
		n.Stop()
		return nil, fmt.Errorf("node %s: pod controller not ready after 1m: %v", cfg.Name, pc.Err())
	}
}

// bind is the node's scheduler: it binds each unscheduled pod for the
// default scheduler to this node, retrying every 2 s until it sticks.
func (n *Node) bind(ctx context.Context, cfg Config) {
	f := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 2*time.Second, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", "").String()
	}))
	inf := f.Core().V1().Pods().Informer()
	try := func(obj any) {
		pod, ok := obj.(*corev1.Pod)
		if !ok || pod.Spec.NodeName != "" || pod.DeletionTimestamp != nil ||
			(pod.Spec.SchedulerName != "" && pod.Spec.SchedulerName != corev1.DefaultSchedulerName) {
			return
		}
		err := cfg.Client.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: cfg.Name},
		}, metav1.CreateOptions{})
		if err != nil && ctx.Err() == nil {
			cfg.Log.Warn("bind", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    try,
		UpdateFunc: func(_, obj any) { try(obj) },
	}); err != nil {
		cfg.Log.Error("binder", "err", err)
		return
	}
	inf.Run(ctx.Done())
}

// Stop stops the node's controllers and every process, and waits for them.
func (n *Node) Stop() {
	n.cancel()
	n.wg.Wait()
	n.p.mu.Lock()
	pods := make([]*podState, 0, len(n.p.pods))
	for _, ps := range n.p.pods {
		pods = append(pods, ps)
	}
	n.p.mu.Unlock()
	for _, ps := range pods {
		ps.cancel()
	}
	n.p.wg.Wait()
}

// Usage returns what every container process that has exited used.
func (n *Node) Usage() []Usage {
	n.p.mu.Lock()
	defer n.p.mu.Unlock()
	return slices.Clone(n.p.usage)
}

// Signal sends sig to the process of container in pod namespace/name.
func (n *Node) Signal(namespace, name, container string, sig syscall.Signal) error {
	return n.p.signal(namespace, name, container, sig)
}
