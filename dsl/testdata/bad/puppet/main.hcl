module {
  name    = "m"
  version = "1.0.0"
}

component "both" {
  create {
    kind     = "puppet"
    manifest = "manifests/site.pp"
    class    = "m"
  }
  delete {
    kind = "puppet"
  }
}

component "bad" {
  create {
    kind  = "puppet"
    class = "My-Class"
  }
  delete {
    kind       = "puppet"
    manifest   = "manifests/stie.pp"
    modulepath = "mods"
  }
}
