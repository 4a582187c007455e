# dtk-agent configuration (HCL). `dtk-agent run` reads this file; a flag
# given on its command line wins over the value here.
#
# Check a change:    dtk-agent config check /etc/dtk/agent.hcl
# Apply labels, log_level and reconcile_interval without a restart:
#                    systemctl reload dtk-agent
# Everything else takes effect at the next `systemctl restart dtk-agent`.
# Every field is described in docs/install.md ("The configuration file").

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

# --- Security (docs/security.md) -----------------------------------------
# Secure is the default: a coordinator does not start without TLS (and a
# gossip key), an agent not without a certificate (files, or enrollment).
# Keys and certificates go in /etc/dtk/tls (mode 0700, root), each key file
# mode 0600. Once encrypt or join_token is set this file holds a secret:
# keep it unreadable by others (0640 root:dtk as installed, or 0600).
# The TLS files are re-read on `systemctl reload dtk-agent` (rotation without
# a restart); changing their paths takes a restart.
#
# A new agent enrolls with join_token and the CA (ca_file, or ca_fingerprint
# from `dtk-agent tls ca fingerprint dtk-ca.pem`), or without a token waits
# for `dtkctl node approve`; its certificate is saved in data_dir/tls and
# the gossip key fetched from a coordinator unless encrypt is set.
#
# tls {
#   ca_file   = "/etc/dtk/tls/dtk-ca.pem"         # cluster CA: dtk-agent tls ca create
#   cert_file = "/etc/dtk/tls/server-c1.pem"      # this node's certificate: dtk-agent tls cert create
#   key_file  = "/etc/dtk/tls/server-c1-key.pem"  #   (--server --name c1 on a coordinator, --node NAME on an agent)
#   # ca_key_file    = "/etc/dtk/tls/dtk-ca-key.pem"  # coordinators: lets agents enroll (needs keyring_file); the
#   #                                                 # leader stores it sealed, remove it after "cluster CA stored"
#   # ca_fingerprint = "sha256:..."                   # a new agent without ca_file: fetch the CA, check it
# }
# encrypt      = "..."                       # gossip key, the same on every node: dtk-agent keygen
# keyring_file = "/etc/dtk/tls/keyring.key"  # coordinators: key-encryption key (dtk-agent keygen), mode 0600,
#                                            #   the same on every coordinator
# join_token   = "..."                       # a new agent: enroll with it (dtkctl node token create)
# enroll_addr  = ["10.0.0.1:7070"]           # coordinator API to enroll through (default: join hosts, port 7070)
# insecure     = false                       # true: no TLS, no authentication, no encryption. Labs only:
#                                            # anyone who reaches the cluster can run code as root on every node.
# acl { enabled = true }                     # coordinators, every one: operators need an ACL token whose
#                                            #   policies say what it may do; then `dtkctl acl bootstrap` once.
#                                            #   Needs TLS (not with insecure).

# --- Tuning ---------------------------------------------------------------
# poll_wait          = "5m"   # longest plan long-poll (at most 10m)
# reconcile_interval = "10m"  # converge the cached plan again (retry failures, fix drift)
# drop_binary_pages  = true   # agents: once idle, drop this process's mappings of its binary's
#                             #   read-only pages (they stay in the page cache): a smaller RSS
# http {                      # coordinators: how long the API waits for its clients (docs/cluster.md)
#   read_header_timeout = "10s"
#   read_timeout        = "30s" # uploads get 1 s more per MiB
#   write_timeout       = "30s" # long-polls get their wait on top, blob downloads 1 s more per MiB
#   idle_timeout        = "2m"
# }

log_level = "info"
