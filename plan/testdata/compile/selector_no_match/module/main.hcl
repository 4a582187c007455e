module {
  name    = "app"
  version = "1.0.0"
}

component "c" {
  create { inline = "true" }
}

template "t" {
  node "db" {
    labels = { role = "db" }
    facts  = { os = "linux" }
    component "c" "x" {}
  }
  node_group "workers" {
    labels = { role = "worker" }
    count  = 3
    component "c" "y" {}
  }
  node_group "gpu" {
    labels = { gpu = "yes" }
  }
}
