module {
  name    = "web"
  version = "1.0.0"
}

component "file" {
  attribute "path" { type = string }
  attribute "content" { type = string }
  create { inline = "printf '%s' \"$content\" > \"$path\"" }
}

template "site" {
  input "domain" {
    type    = string
    default = "shop.example.com"
  }
  node "db" {
    component "file" "marker" {
      path    = "/etc/db"
      content = "db"
    }
  }
  node_group "web" {
    component "file" "nginx" {
      path = "/etc/nginx/conf.d/site.conf"
      content = templatefile("templates/site.conf.tpl", {
        domain   = input.domain
        backends = [for n in node.web : n.address]
        db       = node.db.address
        me       = self.hostname
      })
    }
  }
}
