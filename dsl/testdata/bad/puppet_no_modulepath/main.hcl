module {
  name    = "m"
  version = "1.0.0"
}

component "web" {
  create {
    kind  = "puppet"
    class = "mymod::web"
  }
}
