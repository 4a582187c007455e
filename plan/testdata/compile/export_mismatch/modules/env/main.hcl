module {
  name    = "env"
  version = "1.0.0"
}

component "marker" {
  attribute "name" { type = string }
  create { inline = "true" }
}

template "network" {
  input "region" { type = string }
  node "gw" {
    labels = { role = "gateway" }
    component "marker" "gw" { name = "gateway" }
  }
  node_group "pool" {
    labels = { pool = "dev" }
  }
  export "region" { value = input.region }
  export "replicas" { value = "three" }
  export "dns" { value = { primary = "10.0.0.53" } }
}
