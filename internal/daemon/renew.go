package daemon

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/gossip"
	"github.com/dtkhq/dtk/internal/tlsutil"
)

// An enrolled agent keeps its trust current on its own: it fetches the CA
// bundle (a CA rotation) and the gossip keys (a key rotation it missed
// while away) from the coordinators, and renews its certificate for the
// same key when two thirds of its life have passed.

// maxTrustInterval bounds how long an agent goes without refreshing.
const maxTrustInterval = 10 * time.Minute

// trustInterval is how often to refresh: a tenth of the certificate's
// life, at most maxTrustInterval, at least a second.
func trustInterval(leaf *tlsutil.Store) time.Duration {
	l := leaf.Leaf()
	life := l.NotAfter.Sub(l.NotBefore)
	return min(max(life/10, time.Second), maxTrustInterval)
}

// needsRenewal reports whether a certificate is past two thirds of its
// life.
func needsRenewal(st *tlsutil.Store, now time.Time) bool {
	l := st.Leaf()
	life := l.NotAfter.Sub(l.NotBefore)
	return l.NotAfter.Sub(now) < life/3
}

// trustClient reaches the coordinators gossip knows, then the enrollment
// addresses (gossip may be what needs the new key).
func (d *Daemon) trustClient() *api.Client {
	c := api.NewDynamicClient(func() []string {
		addrs := d.coordinatorAddrs()
		for _, a := range enrollAddrs(&d.cfg) {
			if !slices.Contains(addrs, a) {
				addrs = append(addrs, a)
			}
		}
		return addrs
	})
	c.Secure = true
	c.HTTP = api.TLSHTTPClientFor(d.sec.store)
	return c
}

func (d *Daemon) trustLoop(ctx context.Context) {
	client := d.trustClient()
	log := d.log.With("component", "trust")
	wait := 2 * time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if err := d.refreshTrust(ctx, client); err != nil && ctx.Err() == nil {
			log.Warn("refresh of CA bundle, gossip keys or certificate failed; will retry", "err", err)
			client.Rotate()
		}
		iv := trustInterval(d.sec.store)
		wait = iv - iv/10 + rand.N(iv/5+1)
	}
}

// refreshTrust does one round: CA bundle, gossip keys, renewal.
func (d *Daemon) refreshTrust(ctx context.Context, client *api.Client) error {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tr, err := client.NodeTrust(rctx, d.cfg.Name)
	if err != nil {
		return err
	}
	caFile, certFile, keyFile := enrolledFiles(d.cfg.DataDir)
	if tr.CAPEM != "" && d.cfg.TLS.CA == "" {
		cur, _ := os.ReadFile(caFile)
		if !bytes.Equal(cur, []byte(tr.CAPEM)) {
			if _, err := tlsutil.ParseCertsPEM([]byte(tr.CAPEM)); err != nil {
				return err
			}
			if err := tlsutil.WriteFile(caFile, []byte(tr.CAPEM), 0o644); err != nil {
				return err
			}
			if err := d.sec.store.Reload(); err != nil {
				return err
			}
			d.log.Info("cluster CA bundle updated from the coordinators")
		}
	}
	if tr.GossipPrimary != "" && d.gossip != nil {
		if _, err := d.gossip.AdoptKeys(tr.GossipPrimary, tr.GossipKeys); err != nil && !errors.Is(err, gossip.ErrNotEncrypted) {
			return err
		}
	}
	if !needsRenewal(d.sec.store, time.Now()) {
		return nil
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	key, err := tlsutil.ParseKeyPEM(keyPEM)
	if err != nil {
		return err
	}
	csr, err := tlsutil.CreateCSR(key, d.cfg.Name)
	if err != nil {
		return err
	}
	resp, err := client.Renew(rctx, d.cfg.Name, csr)
	if err != nil {
		return err
	}
	if _, err := tlsutil.NewStoreFromPEM([]byte(tr.CAPEM+"\n"+resp.CAPEM), []byte(resp.CertPEM), keyPEM); err != nil {
		return err
	}
	if err := tlsutil.WriteFile(certFile, []byte(resp.CertPEM), 0o644); err != nil {
		return err
	}
	if err := d.sec.store.Reload(); err != nil {
		return err
	}
	d.log.Info("node certificate renewed", "expires", d.sec.store.Leaf().NotAfter.UTC().Format(time.RFC3339))
	return nil
}
