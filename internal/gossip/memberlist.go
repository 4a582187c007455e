package gossip

import (
	"time"

	"github.com/hashicorp/memberlist"
)

// memberlistConfig is tuned for a LAN; fast shortens probes for tests and
// dev clusters so that failures are seen within a couple of seconds.
func memberlistConfig(fast bool) *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	// No LZW compression of gossip packets: each compressed packet
	// allocates a fresh 16 KiB LZW table, about half of what an idle
	// agent allocated (allocation profile), so it doubled an idle agent's
	// garbage collections. Peers decode compressed and plain messages either way
	// (mixed versions interoperate); what it saved is wire bytes, which
	// are few on a LAN: a probe or ack is under 100 bytes, and a node's
	// push/pull state about 100 bytes per member, every 30 s scaled down
	// with the cluster's size.
	c.EnableCompression = false
	if fast {
		c.ProbeInterval = 200 * time.Millisecond
		c.ProbeTimeout = 100 * time.Millisecond
		c.GossipInterval = 50 * time.Millisecond
		c.SuspicionMult = 2
		c.PushPullInterval = 5 * time.Second
	}
	return c
}
