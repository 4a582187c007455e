module {
  name    = "app"
  version = "1.0.0"
}

component "schema" {
  attribute "url" { type = string }
  output "version" {}
  create { inline = "migrate \"$url\"; echo version=3 >> \"$DTK_OUTPUTS\"" }
}

component "app" {
  attribute "schema" { type = string }
  create { inline = "true" }
}

template "web" {
  node_group "web" {
    labels = { role = "web" }
    component "app" "before" {
      schema = "none"
    }
    component "schema" "migrate" {
      once = true
      url  = "postgres://db/app"
    }
    component "app" "app" {
      schema = output.migrate.version
    }
    component "schema" "not-once" {
      once = false
      url  = "x"
    }
  }
}
