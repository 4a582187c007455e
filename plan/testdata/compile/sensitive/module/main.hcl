module {
  name    = "app"
  version = "1.0.0"
}

component "postgres" {
  attribute "password" {
    type      = string
    sensitive = true
  }
  attribute "port" {
    type    = number
    default = 5432
  }
  output "admin_token" { sensitive = true }
  output "address" {}
  create { inline = "true" }
}

component "app" {
  attribute "conn" { type = string }
  attribute "token" { type = string }
  attribute "label" { type = string }
  create { inline = "true" }
}

template "t" {
  input "db_password" { type = string } # from the parent's sensitive export
  input "api_key" { type = string }     # from an export computed from a sensitive value
  node "db" {
    component "postgres" "pg" { password = input.db_password }
  }
  node "web" {
    component "app" "app" {
      conn  = "postgres://app:${input.db_password}@${node.db.output.pg.address}/app"
      token = node.db.output.pg.admin_token
      label = "port ${node.db.component.pg.port}"
    }
  }
  export "conn_password" { value = node.db.component.pg.password }
}
