// Package cluster runs a real Kubernetes control plane on loopback for
// end-to-end tests: etcd and kube-apiserver as child processes, with a
// throwaway PKI, an admin kubeconfig and client-go clients. There is no
// kubelet, scheduler or controller-manager: pods stay Pending unless a test
// starts tools/e2e/node, and a test that needs what the other controllers
// would write must write it itself.
//
// The binaries come from make e2e-bins (see platform.mk), which passes their
// paths in the environment: E2E_ETCD and E2E_KUBE_APISERVER.
package cluster

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ControlPlane is a running etcd + kube-apiserver.
type ControlPlane struct {
	// Dir holds the PKI, the kubeconfig, etcd's data and the logs.
	Dir string
	// Kubeconfig is the path of an admin (system:masters) kubeconfig.
	Kubeconfig string
	Config     *rest.Config
	Client     kubernetes.Interface
	Dynamic    dynamic.Interface
}

// KubeconfigAs writes a kubeconfig that acts as user (for example
// system:serviceaccount:<ns>:<name>) by impersonation, so a process run with
// it has exactly that user's RBAC permissions, and returns its path.
func (cp *ControlPlane) KubeconfigAs(t testing.TB, user string) string {
	t.Helper()
	kc, err := clientcmd.LoadFromFile(cp.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range kc.AuthInfos {
		a.Impersonate = user
	}
	p := filepath.Join(cp.Dir, "kubeconfig-"+strings.NewReplacer(":", "-", "/", "-").Replace(user))
	if err := clientcmd.WriteToFile(*kc, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// Binary returns the path in environment variable env, failing the test
// when it is unset or not executable.
func Binary(t testing.TB, env string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		t.Fatalf("%s is not set: run the e2e tier with make e2e-cluster, which builds the binaries and sets it", env)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s=%s: not an executable file (%v): run make e2e-bins", env, p, err)
	}
	return p
}

// Start starts etcd and kube-apiserver and waits until the API server is
// ready. Both stop when the test ends.
//
// Admission: the webhook admission plugins are off. Nothing in this
// cluster can serve a webhook behind a Service (no pod network, no
// cluster DNS for the API server to resolve <svc>.<ns>.svc), so the
// training operator's ValidatingWebhookConfiguration, which Flux applies as
// upstream ships it, would otherwise reject every PyTorchJob, and Kueue's
// likewise. Kueue needs none of its webhooks: its job reconciler admits the
// jobs, which are rendered suspended. Every other
// default plugin runs, including ResourceQuota, LimitRanger,
// ServiceAccount and PodSecurity.
func Start(t testing.TB) *ControlPlane {
	t.Helper()
	etcd := Binary(t, "E2E_ETCD")
	apiserver := Binary(t, "E2E_KUBE_APISERVER")
	dir := t.TempDir()
	pki, err := newPKI(dir)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	etcdClient, etcdPeer := FreePort(t), FreePort(t)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	Run(t, ctx, dir, "etcd", etcd,
		"--name=e2e",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=e2e="+peerURL,
	)
	waitHTTP(t, etcdURL+"/health", nil)

	port := FreePort(t)
	Run(t, ctx, dir, "kube-apiserver", apiserver,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port),
		"--cert-dir="+filepath.Join(dir, "apiserver-certs"),
		"--tls-cert-file="+pki.file("apiserver.crt"),
		"--tls-private-key-file="+pki.file("apiserver.key"),
		"--client-ca-file="+pki.file("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+pki.file("sa.pub"),
		"--service-account-signing-key-file="+pki.file("sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=Node,RBAC",
		// On loopback the default lease reconciler makes the server exit.
		"--endpoint-reconciler-type=none",
		"--disable-admission-plugins=ValidatingAdmissionWebhook,MutatingAdmissionWebhook",
	)

	host := "https://127.0.0.1:" + strconv.Itoa(port)
	kc := clientcmdapi.NewConfig()
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{Server: host, CertificateAuthority: pki.file("ca.crt")}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificate: pki.file("admin.crt"), ClientKey: pki.file("admin.key")}
	kc.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "admin"}
	kc.CurrentContext = "e2e"
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	tlsCfg, err := rest.TLSConfigFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitHTTP(t, host+"/readyz", &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}})

	cp := &ControlPlane{Dir: dir, Kubeconfig: kubeconfig, Config: cfg}
	if cp.Client, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if cp.Dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	return cp
}

// Run starts a child process whose output goes to dir/<name>.log, and stops
// it (SIGTERM, then SIGKILL after 10 s) when ctx ends or the test ends. If
// the test failed, the log's tail is printed.
func Run(t testing.TB, ctx context.Context, dir, name, path string, args ...string) *exec.Cmd {
	return RunEnv(t, ctx, dir, name, nil, path, args...)
}

// RunEnv is Run with extra environment variables (KEY=value).
func RunEnv(t testing.TB, ctx context.Context, dir, name string, env []string, path string, args ...string) *exec.Cmd {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Cancel()
		<-exited
		logf.Close()
		if t.Failed() {
			t.Logf("--- last lines of %s ---\n%s", logPath, tail(logPath, 40))
		}
	})
	return cmd
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitHTTP polls url until it answers 200, for at most two minutes.
func waitHTTP(t testing.TB, url string, c *http.Client) {
	t.Helper()
	if c == nil {
		c = http.DefaultClient
	}
	c.Timeout = 2 * time.Second
	deadline := time.Now().Add(2 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s not ready after 2m: %s", url, last)
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for s.Scan() {
		lines = append(lines, s.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	out := ""
	for _, l := range lines {
		out += l + "\n"
	}
	return out
}

// pki is a CA, the API server's serving certificate, an admin client
// certificate and the service account signing key, as PEM files in dir.
type pki struct{ dir string }

func (p pki) file(name string) string { return filepath.Join(p.dir, name) }

func newPKI(dir string) (pki, error) {
	p := pki{dir: filepath.Join(dir, "pki")}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return p, err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return p, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "e2e-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return p, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	if err := writePEM(p.file("ca.crt"), "CERTIFICATE", caDER); err != nil {
		return p, err
	}
	leaf := func(name string, serial int64, tmpl *x509.Certificate) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(24*time.Hour)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return err
		}
		if err := writePEM(p.file(name+".crt"), "CERTIFICATE", der); err != nil {
			return err
		}
		return writePEM(p.file(name+".key"), "EC PRIVATE KEY", keyDER)
	}
	if err := leaf("apiserver", 2, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
	}); err != nil {
		return p, err
	}
	if err := leaf("admin", 3, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "e2e-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return p, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return p, err
	}
	saDER, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return p, err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return p, err
	}
	if err := writePEM(p.file("sa.key"), "EC PRIVATE KEY", saDER); err != nil {
		return p, err
	}
	return p, writePEM(p.file("sa.pub"), "PUBLIC KEY", saPub)
}

func writePEM(path, typ string, der []byte) error {
	data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
