package tlsutil

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile writes data to path atomically: a temporary file in the same
// folder, synced, then renamed over path, so that a reader (or a reload)
// sees the old content or the new, never a part. The file gets mode; the
// folder is created 0700 when missing.
func WriteFile(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create folder %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// Make the rename itself durable; not every system can sync a folder.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// IssueFiles issues a certificate as Issue does and writes it and its new
// key into dir as ROLE-NAME.pem (0644) and ROLE-NAME-key.pem (0600), the
// names `dtk-agent tls cert create` uses.
func (ca *CA) IssueFiles(o CertOptions, dir string) (cert, key string, err error) {
	certPEM, keyPEM, err := ca.Issue(o)
	if err != nil {
		return "", "", err
	}
	base := filepath.Join(dir, string(o.Role)+"-"+o.Name)
	cert, key = base+".pem", base+"-key.pem"
	if err := WriteFile(cert, certPEM, 0o644); err != nil {
		return "", "", err
	}
	if err := WriteFile(key, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	return cert, key, nil
}
