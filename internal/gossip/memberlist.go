package gossip

import (
	"time"

	"github.com/hashicorp/memberlist"
)

// memberlistConfig is tuned for a LAN; fast shortens probes for tests and
// dev clusters so that failures are seen within a couple of seconds.
func memberlistConfig(fast bool) *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	if fast {
		c.ProbeInterval = 200 * time.Millisecond
		c.ProbeTimeout = 100 * time.Millisecond
		c.GossipInterval = 50 * time.Millisecond
		c.SuspicionMult = 2
		c.PushPullInterval = 5 * time.Second
	}
	return c
}
