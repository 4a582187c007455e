module {
  name    = "cluster"
  version = "1.0.0"
}

component "spark" {
  attribute "role" { type = string }
  create { inline = "true" }
}

template "spark" {
  input "zone" { type = string }
  node "master" {
    labels = { role = "master" }
    component "spark" "master" { role = "master in ${input.zone}" }
  }
  node_group "workers" {
    labels = { role = "worker" }
    component "spark" "worker" { role = "worker" }
  }
  export "master_url" { value = "spark://${node.master.address}:7077" }
  inject "spark" "client" { role = "client of ${export.master_url}" }
}
