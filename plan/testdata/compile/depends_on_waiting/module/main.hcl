module {
  name    = "shop"
  version = "1.0.0"
}

component "postgres" {
  attribute "port" {
    type    = number
    default = 5432
  }
  output "address" {}
  create { inline = "echo address=$(hostname):$port >> \"$DTK_OUTPUTS\"" }
}

component "schema" {
  attribute "url" { type = string }
  create { inline = "migrate \"$url\"" }
}

component "app" {
  attribute "database_url" { type = string }
  attribute "port" { type = number }
  create { inline = "true" }
}

template "web" {
  node "db" {
    labels = { role = "db" }
    component "postgres" "pg" {}
    component "schema" "schema" {
      url = "postgres://${output.pg.address}/shop"
    }
  }
  node "web" {
    labels = { role = "web" }
    component "app" "app" {
      database_url = "postgres://${node.db.output.pg.address}/shop"
      port         = node.db.component.pg.port
    }
    component "app" "worker" {
      database_url = "postgres://localhost/shop"
      port         = 0
      depends_on   = ["db/schema"]
    }
  }
  export "db_address" { value = node.db.output.pg.address }
}
