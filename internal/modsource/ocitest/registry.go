// Package ocitest runs a real OCI registry for tests: the CNCF
// distribution registry of Debian's docker-registry package (installed by
// .ci/run), as a process on a loopback address, serving TLS with a
// certificate of its own test CA and asking for a user's password
// (htpasswd), or plain HTTP without a login when asked.
package ocitest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Binary is the registry's command, from Debian's docker-registry package.
const Binary = "docker-registry"

// Registry is a running registry.
type Registry struct {
	// Host is IP:PORT, as an oci:// reference names it.
	Host string
	// CAFile is the PEM of the CA that signed the registry's certificate
	// ("" with PlainHTTP).
	CAFile string
	// Username and Password are the one user's ("" with PlainHTTP).
	Username, Password string
	// DockerConfig is a folder whose config.json holds the user's
	// credentials for Host, as `docker login` writes them: set
	// $DOCKER_CONFIG to it.
	DockerConfig string
	// Storage is the folder the registry keeps its blobs in.
	Storage string

	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// Options change how Start runs the registry.
type Options struct {
	// PlainHTTP serves http without TLS and without a login.
	PlainHTTP bool
	// Port is the TCP port on the address (default 5055, not the
	// registry's usual 5000: a docker-registry service the package
	// started would hold that port on every address).
	Port int
}

// Start runs a registry on ip (a loopback address the test owns) and
// stops it when the test ends. Without the docker-registry binary the
// test is skipped, or fails when $DTK_REQUIRE_TOOLS is set (as in CI).
func Start(t testing.TB, ip string, opts Options) *Registry {
	t.Helper()
	path, err := exec.LookPath(Binary)
	if err != nil {
		if os.Getenv("DTK_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s is not installed: apt-get install docker-registry (DTK_REQUIRE_TOOLS is set, so this test may not skip)", Binary)
		}
		t.Skipf("%s is not installed: apt-get install docker-registry (set DTK_REQUIRE_TOOLS=1 to fail instead)", Binary)
	}
	if opts.Port == 0 {
		opts.Port = 5055
	}
	dir := t.TempDir()
	r := &Registry{Host: net.JoinHostPort(ip, fmt.Sprint(opts.Port)), Storage: filepath.Join(dir, "storage"),
		DockerConfig: filepath.Join(dir, "docker"), out: &syncBuffer{}, done: make(chan struct{})}
	config := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: %s
`, r.Storage, r.Host, randomHex(16))
	if !opts.PlainHTTP {
		r.CAFile = filepath.Join(dir, "ca.pem")
		cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		if err := writeTLS(ip, r.CAFile, cert, key); err != nil {
			t.Fatal(err)
		}
		r.Username, r.Password = "dtk", randomHex(16)
		hash, err := bcrypt.GenerateFromPassword([]byte(r.Password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(r.Username+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		config += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\nauth:\n  htpasswd:\n    realm: dtk-test\n    path: %s\n", cert, key, htpasswd)
		if err := r.writeDockerConfig(); err != nil {
			t.Fatal(err)
		}
	}
	cfgFile := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(path, "serve", cfgFile)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("--- output of the registry at %s ---\n%s", r.Host, r.out.String())
		}
	})
	r.waitReady(t)
	return r
}

// URL is the registry's base URL.
func (r *Registry) URL() string {
	if r.CAFile == "" {
		return "http://" + r.Host
	}
	return "https://" + r.Host
}

// Client is an HTTP client that trusts the registry's CA.
func (r *Registry) Client() *http.Client {
	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(r.CAFile); err == nil {
		pool.AppendCertsFromPEM(pem)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func (r *Registry) waitReady(t testing.TB) {
	t.Helper()
	c := r.Client()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get(r.URL() + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return
			}
		}
		select {
		case <-r.done:
			t.Fatalf("the registry exited:\n%s", r.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the registry at %s is not ready after 30s (%v):\n%s", r.Host, err, r.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *Registry) stop() {
	select {
	case <-r.done:
		return
	default:
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
	}
}

// writeDockerConfig writes config.json as `docker login` does without a
// credential helper.
func (r *Registry) writeDockerConfig() error {
	if err := os.MkdirAll(r.DockerConfig, 0o700); err != nil {
		return err
	}
	cfg := map[string]any{"auths": map[string]any{
		r.Host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(r.Username + ":" + r.Password))},
	}}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	return os.WriteFile(filepath.Join(r.DockerConfig, "config.json"), b, 0o600)
}

// writeTLS writes a CA and a server certificate for ip signed by it.
func writeTLS(ip, caFile, certFile, keyFile string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dtk test registry CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: ip},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IPAddresses: []net.IP{net.ParseIP(ip)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	for file, block := range map[string]*pem.Block{
		caFile:   {Type: "CERTIFICATE", Bytes: caDER},
		certFile: {Type: "CERTIFICATE", Bytes: der},
		keyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// syncBuffer is a bytes.Buffer safe for the process's writes and the
// test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TreeDigests maps each regular file under dir (dot folders left out, as a
// module archive leaves them out) to its sha256 and " x" when executable:
// what tests compare to see a module folder arrive byte for byte.
func TreeDigests(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != dir && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		rel, _ := filepath.Rel(dir, p)
		v := hex.EncodeToString(sum[:])
		if info.Mode()&0o111 != 0 {
			v += " x"
		}
		out[filepath.ToSlash(rel)] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
