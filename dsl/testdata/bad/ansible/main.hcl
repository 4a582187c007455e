module {
  name    = "m"
  version = "1.0.0"
}

component "both" {
  create {
    kind     = "ansible"
    playbook = "site.yml"
    role     = "web"
  }
  delete {
    kind = "ansible"
  }
}

component "missing" {
  create {
    kind     = "ansible"
    playbook = "site.yml"
  }
  delete {
    kind = "ansible"
    role = "wbe"
  }
}

component "invalid" {
  create {
    kind = "ansible"
    role = "../web"
  }
}
