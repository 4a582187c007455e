module {
  name    = "shop"
  version = "1.0.0"
}

component "schema" {
  attribute "url" { type = string }
  output "version" {}
  create { inline = "migrate \"$url\"; echo version=3 >> \"$DTK_OUTPUTS\"" }
}

component "app" {
  attribute "schema" {
    type    = string
    default = ""
  }
  create { inline = "true" }
}

template "shop" {
  node_group "web" {
    labels = { role = "web" }
    component "app" "nginx" {}
    component "schema" "migrate" {
      once = true
      url  = "postgres://db/shop?from=${self.name}"
    }
    component "app" "app" {
      schema = output.migrate.version
    }
    component "app" "worker" {}
  }
  node "lb" {
    labels = { role = "lb" }
    component "app" "proxy" {
      depends_on = ["web/migrate"]
    }
  }
}
