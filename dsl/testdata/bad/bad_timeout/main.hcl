module {
  name    = "m"
  version = "1.0.0"
}

component "c" {
  create {
    inline  = "true"
    timeout = "2 minutes"
  }
  delete {
    inline  = "true"
    timeout = "-1s"
  }
}
