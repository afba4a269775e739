package launch

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	kubeflowv1 "github.com/kubeflow/training-operator/pkg/apis/kubeflow.org/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/aerie-ml/aerie/internal/exitcode"
)

// Job is a rendered PyTorchJob planned as local replicas.
type Job struct {
	Name     string
	Replicas []Replica
	// Dir holds the ConfigMaps the pods mount, materialized as files; the
	// replicas' arguments point into it. Remove it when the job is done.
	Dir string
}

// Overlay builds the Kustomize overlay at dir in process (krusty, plugins
// disabled, load restrictions root-only), finds its one PyTorchJob and plans
// its Master and Worker replicas as the training operator would start them:
// the container named "pytorch", its args and literal environment, RANK 0
// for the Master and 1… for the Workers, and the operator's contract on
// 127.0.0.1. ConfigMap volumes (the run declaration at /etc/aerie/run) are
// written under a new temporary directory and their mount paths in the
// arguments replaced by it. extra arguments are appended to every replica's.
func Overlay(dir string, extra []string) (*Job, error) {
	k := krusty.MakeKustomizer(&krusty.Options{
		LoadRestrictions: types.LoadRestrictionsRootOnly,
		PluginConfig:     types.DisabledPluginConfig(),
	})
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, exitcode.Errorf(exitcode.Config, "build overlay %s: %w", dir, err)
	}
	var jobs []*kubeflowv1.PyTorchJob
	configMaps := map[string]*corev1.ConfigMap{}
	for _, r := range m.Resources() {
		gvk := r.GetGvk()
		var into any
		switch {
		case gvk.Group == kubeflowv1.GroupVersion.Group && gvk.Kind == kubeflowv1.PyTorchJobKind:
			j := &kubeflowv1.PyTorchJob{}
			jobs, into = append(jobs, j), j
		case gvk.Group == "" && gvk.Kind == "ConfigMap":
			cm := &corev1.ConfigMap{}
			configMaps[r.GetName()], into = cm, cm
		default:
			continue
		}
		b, err := r.MarshalJSON()
		if err == nil {
			err = json.Unmarshal(b, into)
		}
		if err != nil {
			return nil, exitcode.Errorf(exitcode.Config, "overlay %s: %s %s: %w", dir, gvk.Kind, r.GetName(), err)
		}
	}
	if len(jobs) != 1 {
		return nil, exitcode.Errorf(exitcode.Config, "overlay %s renders %d PyTorchJobs, want exactly 1", dir, len(jobs))
	}
	return plan(jobs[0], configMaps, extra)
}

func plan(pj *kubeflowv1.PyTorchJob, configMaps map[string]*corev1.ConfigMap, extra []string) (job *Job, err error) {
	bad := func(format string, args ...any) error {
		return exitcode.Errorf(exitcode.Config, "PyTorchJob %s: "+format, append([]any{pj.Name}, args...)...)
	}
	type group struct {
		typ  kubeflowv1.ReplicaType
		n    int
		spec *corev1.PodSpec
	}
	var groups []group
	for _, typ := range []kubeflowv1.ReplicaType{kubeflowv1.PyTorchJobReplicaTypeMaster, kubeflowv1.PyTorchJobReplicaTypeWorker} {
		rs := pj.Spec.PyTorchReplicaSpecs[typ]
		if rs == nil {
			continue
		}
		n := 1
		if rs.Replicas != nil {
			n = int(*rs.Replicas)
		}
		groups = append(groups, group{typ, n, &rs.Template.Spec})
	}
	for typ := range pj.Spec.PyTorchReplicaSpecs {
		if typ != kubeflowv1.PyTorchJobReplicaTypeMaster && typ != kubeflowv1.PyTorchJobReplicaTypeWorker {
			return nil, bad("replica type %q: only Master and Worker run locally", typ)
		}
	}
	if len(groups) == 0 || groups[0].typ != kubeflowv1.PyTorchJobReplicaTypeMaster || groups[0].n != 1 {
		return nil, bad("want exactly one Master replica")
	}
	world := 0
	for _, g := range groups {
		world += g.n
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	tok := Token()
	job = &Job{Name: pj.Name}
	job.Dir, err = os.MkdirTemp("", "aerie-launch-"+pj.Name+"-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(job.Dir)
		}
	}()
	rank := 0
	for _, g := range groups {
		i := slices.IndexFunc(g.spec.Containers, func(c corev1.Container) bool { return c.Name == "pytorch" })
		if i < 0 {
			return nil, bad("%s has no container named pytorch (the operator requires it)", g.typ)
		}
		c := g.spec.Containers[i]
		args := slices.Clone(c.Args)
		if len(c.Command) > 0 {
			// The image's entrypoint is the trainer; a command overriding
			// it must still be the trainer.
			if filepath.Base(c.Command[0]) != "trainer" {
				return nil, bad("%s command %q is not the trainer", g.typ, c.Command)
			}
			args = append(slices.Clone(c.Command[1:]), args...)
		}
		dir := filepath.Join(job.Dir, strings.ToLower(string(g.typ)))
		if args, err = mountConfigMaps(dir, g.spec, &c, configMaps, args); err != nil {
			return nil, bad("%s: %w", g.typ, err)
		}
		args = append(args, extra...)
		var env []string
		for _, e := range c.Env {
			if e.ValueFrom != nil {
				// Secrets and field references exist only in a cluster;
				// the launcher supplies the token itself.
				continue
			}
			env = append(env, e.Name+"="+e.Value)
		}
		for range g.n {
			job.Replicas = append(job.Replicas, Replica{Rank: rank, Args: args, Env: append(slices.Clone(env), Contract(rank, world, port, tok)...)})
			rank++
		}
	}
	return job, nil
}

// mountConfigMaps writes every ConfigMap volume the container mounts under
// dir and points the arguments that name the mount path at it instead.
func mountConfigMaps(dir string, spec *corev1.PodSpec, c *corev1.Container, configMaps map[string]*corev1.ConfigMap, args []string) ([]string, error) {
	for _, vm := range c.VolumeMounts {
		i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name })
		if i < 0 {
			return nil, fmt.Errorf("volume mount %q names no volume", vm.Name)
		}
		src := spec.Volumes[i].ConfigMap
		if src == nil {
			continue // emptyDir and the like: the local filesystem serves
		}
		cm := configMaps[src.Name]
		if cm == nil {
			return nil, fmt.Errorf("volume %q: ConfigMap %q is not in the overlay", vm.Name, src.Name)
		}
		local := filepath.Join(dir, vm.Name)
		if err := os.MkdirAll(local, 0o755); err != nil {
			return nil, err
		}
		for name, data := range cm.Data {
			if err := writeKey(local, name, []byte(data)); err != nil {
				return nil, err
			}
		}
		for name, data := range cm.BinaryData {
			if err := writeKey(local, name, data); err != nil {
				return nil, err
			}
		}
		mount := strings.TrimSuffix(vm.MountPath, "/")
		for k, a := range args {
			args[k] = replacePath(a, mount, local)
		}
	}
	return args, nil
}

func writeKey(dir, name string, data []byte) error {
	if !filepath.IsLocal(name) || strings.ContainsRune(name, '/') {
		return fmt.Errorf("ConfigMap key %q is not a plain file name", name)
	}
	return os.WriteFile(filepath.Join(dir, name), data, 0o644)
}

// replacePath swaps mount for local where it starts a path in arg:
// "--run=/etc/aerie/run/run.yaml" or "/etc/aerie/run/run.yaml".
func replacePath(arg, mount, local string) string {
	for _, pre := range []string{"", "="} {
		i := strings.Index(arg, pre+mount)
		if i < 0 || (pre == "" && i != 0) {
			continue
		}
		j := i + len(pre) + len(mount)
		if j == len(arg) || arg[j] == '/' {
			return arg[:i+len(pre)] + local + arg[j:]
		}
	}
	return arg
}
