module {
  name    = "app"
  version = "1.0.0"
  requires "base" { version = "~> 1.2" }
  requires "net" { version = "~> 1.0" }
}

template "t" {
  node "web" {
    component "base.package" "nginx" {
      name    = "nginx"
      verison = "1.24"
    }
    component "base.service" "svc" {}
    component "net.firewall" "fw" {}
  }
}
