module {
  name    = "users"
  version = "1.0.0"
}

# Each action block names the account its processes run as.
component "app" {
  create {
    inline = "id -un"
    user   = "app"
    group  = "www-data"
  }
  delete {
    inline = "true"
    user   = "app"
  }
  check {
    inline = "true"
    group  = "adm"
  }
  action "reload" {
    kind    = "exec"
    program = "/bin/true"
    user    = "root"
  }
}
