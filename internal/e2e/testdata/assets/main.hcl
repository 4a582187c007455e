# Assets as they are: a published Puppet module and a container image,
# wrapped unchanged. See README.md for what the test adds before pushing.
module {
  name    = "assets"
  version = "1.0.0"
}

# puppetlabs-ntp, as Debian packages it (puppet-module-puppetlabs-ntp, with
# stdlib), applied by class from where the package puts it: Puppet searches
# the node's module folders (/usr/share/puppet/modules). Its parameters are
# the attributes; here it manages only its configuration file.
component "ntp" {
  attribute "config" {
    type        = string
    description = "the ntp.conf the class writes"
  }
  attribute "package_manage" {
    type    = bool
    default = false
  }
  attribute "service_manage" {
    type    = bool
    default = false
  }
  create {
    kind  = "puppet"
    class = "ntp"
  }
  # puppet apply --noop of the same class: a resource out of sync is drift.
  check { kind = "noop" }
}

# A container from an image tarball shipped in the module. No check: a
# container's default check is the noop check (it is there, running, with
# its configuration and image).
component "box" {
  attribute "image" { type = string }
  attribute "image_archive" {
    type    = string
    default = "images/box.tar"
  }
  attribute "command" {
    type    = list(string)
    default = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
  }
  attribute "network" {
    type    = string
    default = "none"
  }
  attribute "stop_timeout" {
    type    = number
    default = 2
  }
  create { kind = "container" }
  delete { kind = "container" }
}

template "site" {
  input "ntp_config" { type = string }
  input "image" { type = string }
  node "n" {
    component "ntp" "ntp" {
      config = input.ntp_config
    }
    component "box" "box" {
      image = input.image
    }
  }
}
