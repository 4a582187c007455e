module {
  name    = "shop"
  version = "1.0.0"
}

component "postgres" {
  attribute "size" { type = string }
  attribute "listen" { type = string }
  create { inline = "true" }
}

component "app" {
  attribute "region" { type = string }
  attribute "database" { type = string }
  attribute "workers" { type = number }
  create { inline = "true" }
}

template "shop" {
  input "region" { type = string }
  input "db_size" { type = string }
  input "workers" {
    type    = number
    default = 4
  }
  node "db" {
    labels = { role = "db" }
    component "postgres" "pg" {
      size   = input.db_size
      listen = self.address
    }
  }
  node_group "web" {
    labels = { role = "web" }
    component "app" "app" {
      region   = input.region
      database = "${node.db.hostname}:5432"
      workers  = input.workers
    }
  }
}
