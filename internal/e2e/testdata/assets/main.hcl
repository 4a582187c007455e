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

# The same puppetlabs-ntp through params: the class's parameters are named
# and computed here, so the component keeps helper attributes (note) and
# its own names (dir, upstream). upstream left unset: the class default.
component "timesync" {
  attribute "dir" {
    type     = string
    required = true
  }
  attribute "upstream" { type = list(string) }
  attribute "note" {
    type    = string
    default = "a helper attribute: not a class parameter"
  }
  create {
    kind  = "puppet"
    class = "ntp"
    params = {
      config         = "${dir}/ntp.conf"
      servers        = upstream
      package_manage = false
      service_manage = false
    }
  }
  check { kind = "noop" }
}

# An Ansible role in the standard layout (roles/appconf: defaults, tasks,
# handlers, templates, community.general.ini_file), wrapped unchanged. An
# attribute left unset is not passed: the role's default applies.
component "appconf" {
  attribute "dir" {
    type     = string
    required = true
  }
  attribute "port" { type = number }
  attribute "greeting" { type = string }
  create {
    kind = "ansible"
    role = "appconf"
    params = {
      appconf_dir      = dir
      appconf_port     = port
      appconf_greeting = greeting
    }
  }
  check { kind = "noop" }
}

# The application the configuration is for: started once, reloaded when
# its configuration changed (subscribe below). Its url is an output.
component "app" {
  attribute "dir" {
    type     = string
    required = true
  }
  output "url" {}
  create {
    inline = <<-SH
      echo "started $(sed -n 's/^port = //p' "$dir/app.conf")" >> "$dir/app.log"
      echo "url=http://$DTK_NODE/app" >> "$DTK_OUTPUTS"
    SH
  }
  action "reload" {
    inline = "echo \"reloaded $(sed -n 's/^port = //p' \"$dir/app.conf\")\" >> \"$dir/app.log\""
  }
}

# A client on another node: it reads the app's url (an output of another
# node), so it runs when the url changes.
component "client" {
  attribute "dir" {
    type     = string
    required = true
  }
  attribute "url" {
    type     = string
    required = true
  }
  create {
    inline = "echo \"$url\" >> \"$dir/client.log\""
  }
  delete {
    inline = "echo deleted >> \"$dir/client.log\""
  }
}

# Three nodes: time (Puppet), app (Ansible and bash, subscribed) and edge
# (a container and the client). dir is each node's own folder.
template "shop" {
  input "dir" { type = string }
  input "image" { type = string }
  input "port" {
    type    = number
    default = null # unset: the role's default
  }
  input "upstream" {
    type    = list(string)
    default = null # unset: the class's default
  }
  node "time" {
    labels = { shop = "time" }
    component "timesync" "ntp" {
      dir      = "${input.dir}/time"
      upstream = input.upstream
    }
  }
  node "app" {
    labels = { shop = "app" }
    component "appconf" "conf" {
      dir  = "${input.dir}/app"
      port = input.port
    }
    component "app" "web" {
      dir       = "${input.dir}/app"
      subscribe = [component.conf] # after conf; reloaded when conf changed
      refresh   = "reload"
    }
  }
  node "edge" {
    labels = { shop = "edge" }
    component "box" "box" {
      image = input.image
    }
    component "client" "client" {
      dir = "${input.dir}/edge"
      url = node.app.output.web.url
    }
  }
}
