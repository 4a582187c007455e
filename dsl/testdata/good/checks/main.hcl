module {
  name    = "checks"
  version = "1.0.0"
}

# A noop check: create (a puppet manifest) run with --noop.
component "site" {
  create {
    kind     = "puppet"
    manifest = "manifests/site.pp"
  }
  check {
    kind    = "noop"
    timeout = "2m"
  }
}

# A check of kind puppet of its own: run with --noop, never applied.
component "audited" {
  create { inline = "echo configured" }
  check {
    kind     = "puppet"
    manifest = "manifests/site.pp"
  }
}

# A container: the noop check is its default, written out here.
component "cache" {
  attribute "image" { type = string }
  create { kind = "container" }
  check { kind = "noop" }
}
