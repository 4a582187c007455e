module {
  name    = "app"
  version = "1.0.0"
}

component "conf" {
  create { inline = "true" }
}

template "web" {
  # api is new in this version of the template: it must not take web's
  # agent, although it comes first.
  node "api" {
    labels = { role = "web" }
    component "conf" "api" {}
  }
  node "web" {
    labels = { role = "web" }
    component "conf" "web" {}
  }
  node_group "workers" {
    labels = { role = "worker" }
    count  = 2
    component "conf" "worker" {}
  }
}
