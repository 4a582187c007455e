module {
  name    = "pool"
  version = "1.0.0"
}

component "c" {
  attribute "v" { type = any }
  create { inline = "true" }
}

template "env" {
  input "env" { type = string }
  node_group "all" {}
  export "env" { value = input.env }
}

template "app" {
  input "env" { type = string }
  input "workers" {
    type    = number
    default = 1
  }
  input "extra" {
    type    = any
    default = {}
  }
  node "web" {
    labels = merge({ env = input.env, role = "web" }, input.extra)
    component "c" "site" { v = 1 }
  }
  node_group "workers" {
    labels = { env = input.env, role = "worker" }
    count  = input.workers
    component "c" "job" { v = length(node.workers) }
  }
}
