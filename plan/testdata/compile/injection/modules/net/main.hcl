module {
  name    = "net"
  version = "1.0.0"
}

component "agent" {
  attribute "endpoint" { type = string }
  attribute "host" { type = string }
  create { inline = "install-agent" }
}

component "agent_conf" {
  attribute "content" { type = string }
  create { inline = "configure-agent" }
}

template "network" {
  node_group "all" {}
  export "metrics_url" { value = "http://metrics.internal:9090" }
  export "zone" { value = "z1" }
  inject "agent" "monitor" {
    endpoint = export.metrics_url
    host     = self.hostname
  }
  inject "agent_conf" "monitor_conf" {
    content    = "zone=${export.zone} node=${self.name}"
    depends_on = ["monitor"]
  }
}
