module {
  name    = "env"
  version = "1.0.0"
}

component "agent" {
  attribute "endpoint" { type = string }
  attribute "host" { type = string }
  create { inline = "install-monitoring-agent" }
}

# Two environments: the same exports and injected agent, with different
# values.
template "dev" {
  node_group "pool" {
    labels = { env = "dev" }
  }
  export "region" { value = "eu-west-1" }
  export "db_size" { value = "small" }
  export "metrics" { value = "http://192.168.10.5:9090" }
  inject "agent" "monitor" {
    endpoint = export.metrics
    host     = self.hostname
  }
}

template "prod" {
  node_group "pool" {
    labels = { env = "prod" }
  }
  export "region" { value = "us-east-1" }
  export "db_size" { value = "large" }
  export "metrics" { value = "http://192.168.20.5:9090" }
  inject "agent" "monitor" {
    endpoint = export.metrics
    host     = self.hostname
  }
}
