module {
  name    = "inputs"
  version = "1.0.0"
}

# Wraps the class conf unchanged: params renames and computes its
# parameters; owner is a helper attribute the class does not know.
component "conf" {
  attribute "dir" {
    type     = string
    required = true
  }
  attribute "upstream" {
    type    = list(string)
    default = ["a.example", "b.example"]
  }
  attribute "mode" { type = string }
  attribute "owner" {
    type    = string
    default = "ops"
  }
  create {
    kind   = "puppet"
    class  = "conf"
    params = { path = "${dir}/conf.txt", servers = upstream, mode = mode }
  }
  delete {
    inline = "rm -f \"$dir/conf.txt\""
  }
}

# Wraps the role motd unchanged: text left unset keeps the role default.
component "motd" {
  attribute "dir" {
    type     = string
    required = true
  }
  attribute "text" { type = string }
  create {
    kind   = "ansible"
    role   = "motd"
    params = { motd_path = "${dir}/motd", motd_text = text }
  }
  delete {
    inline = "rm -f \"$dir/motd\""
  }
}

template "app" {
  input "dir" { type = string }
  input "mode" {
    type    = string
    default = ""
  }
  node "n" {
    component "conf" "main" {
      dir  = input.dir
      mode = input.mode == "" ? null : input.mode
    }
    component "motd" "motd" {
      dir = input.dir
    }
  }
}
