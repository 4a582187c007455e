module {
  name    = "shop"
  version = "1.0.0"
}

component "ntp" {
  attribute "upstream" { type = list(string) }
  attribute "dir" {
    type    = string
    default = "/etc"
  }
  attribute "note" { type = string }
  create {
    kind   = "puppet"
    class  = "ntp"
    params = { servers = upstream, config = "${dir}/ntp.conf" }
  }
  delete {
    kind   = "ansible"
    role   = "motd"
    params = { motd_text = note }
  }
}

template "t" {
  node "n" {
    component "ntp" "time" {
      upstream = ["a.example", "b.example"]
    }
  }
}
