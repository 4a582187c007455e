# dtk-agent configuration (HCL). `dtk-agent run` reads this file; a flag
# given on its command line wins over the value here.
#
# Check a change:    dtk-agent config check /etc/dtk/agent.hcl
# Apply labels, log_level and reconcile_interval without a restart:
#                    systemctl reload dtk-agent
# Everything else takes effect at the next `systemctl restart dtk-agent`.
# Every field is described in docs/install.md ("Configuration reference").

# Node name, unique in the cluster (default: the hostname).
# name = "web-1"

# State: local plan cache, report queue, gossip snapshot, coordinator data.
data_dir = "/var/lib/dtk"

# Gossip address of this node, an IP address the other nodes can reach.
# Templates see its host part as the node's address.
# serf_addr = "10.0.0.5:7946"

# Gossip address of any coordinator or agent, needed the first time an agent
# starts (a coordinator of a new cluster may leave it empty).
# join = ["10.0.0.1:7946", "10.0.0.2:7946", "10.0.0.3:7946"]

# Labels that templates select nodes by.
# labels = { role = "web", env = "prod" }

# --- Coordinators only ----------------------------------------------------
# coordinator      = true
# bootstrap_expect = 3                # coordinators that form the cluster
# http_addr        = "10.0.0.1:7070"  # API for dtkctl and agents (default: serf host, port 7070)
# raft_addr        = "10.0.0.1:7947"  # Raft between coordinators (default: serf host, port 7947)
# no_agent         = true             # do not also act as a node

# --- Tuning ---------------------------------------------------------------
# poll_wait          = "5m"   # longest plan long-poll (at most 10m)
# reconcile_interval = "10m"  # converge the cached plan again (retry failures, fix drift)

log_level = "info"
