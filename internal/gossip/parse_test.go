package gossip

import (
	"net"
	"testing"

	"github.com/hashicorp/serf/serf"
)

// TestParse_ReadsTheFeaturesTag: a coordinator's capabilities reach its
// peers as the features tag; a member without it (an older version) has
// none.
func TestParse_ReadsTheFeaturesTag(t *testing.T) {
	m := serf.Member{Name: "c1", Addr: net.ParseIP("127.0.0.1"), Port: 7946, Status: serf.StatusAlive,
		Tags: map[string]string{TagRole: RoleCoordinator, TagFeatures: "planned-deploy,other"}}
	if p := Parse(m); p.Features != "planned-deploy,other" || p.Role != RoleCoordinator || p.Status != "alive" {
		t.Fatalf("Parse = %+v", p)
	}
	delete(m.Tags, TagFeatures)
	if p := Parse(m); p.Features != "" {
		t.Fatalf("a member without the tag has features %q", p.Features)
	}
}
