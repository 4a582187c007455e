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
  export "replicas" { value = 3 }
  export "dns" { value = ["10.0.0.53", "10.0.1.53"] }
}
