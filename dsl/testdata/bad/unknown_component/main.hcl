module {
  name    = "m"
  version = "1.0.0"
}

component "http_server" {
  create { inline = "true" }
}

template "t" {
  node "n" {
    component "htp_server" "x" {}
    component "database" "y" {}
  }
}
