module {
  name    = "rt"
  version = "1.0.0"
}
component "c" {
  create {
    inline      = "true"
    retries     = 3
    retry_delay = "soon"
  }
  delete {
    inline  = "true"
    retries = -1
  }
}
