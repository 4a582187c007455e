module {
  name    = "m"
  version = "1.0.0"
}

component "file" {
  attribute "path" { type = string }
  create { inline = "true" }
}

component "service" {
  attribute "name" { type = string }
  create { inline = "true" }
  action "reload" { inline = "true" }
}

template "t" {
  node "a" {
    component "service" "nginx" {
      name      = "nginx"
      subscribe = [component.config, "site"]
      refresh   = "reload"
    }
    component "file" "config" { path = "/etc/nginx/nginx.conf" }
    component "file" "site" { path = "/etc/nginx/sites/default" }
    component "service" "app" {
      name       = "app"
      depends_on = [component.nginx]
      subscribe  = [component.config]
    }
  }
  inject "file" "agent_conf" { path = "/etc/agent.conf" }
  inject "service" "agent" {
    name      = "agent"
    subscribe = ["agent_conf"]
    refresh   = "reload"
  }
}
