module {
  name    = "m"
  version = "1.0.0"
}

component "names" {
  attribute "servers" { type = list(string) }
  create {
    kind   = "puppet"
    class  = "mymod::web"
    params = { "Bad-Name" = servers, title = "x" }
  }
  delete {
    kind   = "ansible"
    role   = "web"
    params = { dtk_node = servers, "1st" = servers }
  }
}

component "refs" {
  attribute "servers" { type = list(string) }
  create {
    kind   = "puppet"
    class  = "mymod::web"
    params = { servers = server, config = "${dri}/ntp.conf", upper = upper(dir) }
  }
  delete {
    kind   = "ansible"
    role   = "web"
    params = { ok = templatefile("templates/x", {}), in = input.x }
  }
  attribute "dir" { type = string }
}

component "manifest" {
  create {
    kind     = "puppet"
    manifest = "manifests/site.pp"
    params   = {}
  }
}

component "notamap" {
  create {
    kind   = "ansible"
    role   = "web"
    params = ["servers"]
  }
}
