module {
  name    = "env"
  version = "1.0.0"
}

template "dev" {
  node_group "pool" {
    labels = { env = "dev" }
  }
}
