module {
  name    = "m"
  version = "1.0.0"
  requires "base" { version = "~> 1.2" }
  requires "base" { version = "1.0.0" }
  requires "m" { version = "1.0.0" }
  requires "net" { version = "~> one" }
  requires "dns" { version = ">= 1.0.0, " }
  requires "tls" {}
  requires "Bad" { version = "1.0.0" }
}

component "file" {
  create { inline = "true" }
}

template "t" {
  node "n" {
    component "bse.file" "a" {}
    component "base.File" "b" {}
    component "other.file" "c" {}
    component "m.file" "d" {}
    component "m.nope" "e" {}
  }
}
