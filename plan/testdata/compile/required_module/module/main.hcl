module {
  name    = "app"
  version = "1.0.0"
  requires "base" { version = "~> 1.2.0" }
}

component "app" {
  attribute "needs" { type = string }
  create { inline = "true" }
}

template "t" {
  node "web" {
    component "base.package" "nginx" { name = "nginx" }
    component "app" "app" {
      needs      = "nginx ${component.nginx.version}"
      depends_on = [component.nginx]
    }
  }
}
