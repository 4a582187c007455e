module {
  name    = "app"
  version = "1.0.0"
}

component "c" {
  create { inline = "true" }
}

template "t" {
  node "primary" {
    labels = { role = "db" }
    component "c" "x" {}
  }
  node "replica" {
    labels = { role = "db" }
    component "c" "x" {}
  }
  node_group "all" {
    labels = { role = "db" }
  }
}
