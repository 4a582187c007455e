module {
  name    = "m"
  version = "1.0.0"
}

component "c" {
  attribute "v" { type = any }
  output "address" {}
  create { inline = "true" }
}

template "t" {
  input "env" { type = string }
  node "db" {
    labels = { role = "db" }
    component "c" "pg" { v = 1 }
  }
  node "web" {
    labels = { env = input.enviroment, db = node.db.address }
    facts  = { os = self.os, arc = input.env }
  }
  node_group "workers" {
    labels = { env = input.env, peer = node.db.output.pg.address }
    count  = length(output.pg)
  }
}
