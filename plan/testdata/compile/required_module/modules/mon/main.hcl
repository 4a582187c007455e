module {
  name    = "mon"
  version = "1.0.0"
  requires "base" { version = ">= 1.3.0" }
}

template "env" {
  node_group "all" {}
  inject "base.package" "agent" { name = "node-exporter" }
}
