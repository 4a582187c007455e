module {
  name    = "shop"
  version = "1.4.0"
  requires "base" {
    version = "~> 1.2"
  }
  requires "monitoring" {
    version = ">= 2.0.0, < 3.0.0"
  }
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
  attribute "config" { type = string }
  attribute "port" { type = number }
  create { inline = "true" }
}

template "web" {
  input "domain" {
    type    = string
    default = "shop.example.com"
  }
  node "db" {
    labels = { role = "db" }
    component "postgres" "pg" {}
    component "schema" "schema" {
      url        = "postgres://${output.pg.address}/shop"
      depends_on = [component.pg]
    }
    component "base.file" "motd" {
      path    = "/etc/motd"
      content = "database of ${input.domain}"
    }
  }
  node "web" {
    labels = { role = "web" }
    component "base.package" "nginx" {
      name = "nginx"
    }
    component "app" "app" {
      database_url = "postgres://${node.db.output.pg.address}/shop"
      port         = node.db.component.pg.port + 1
      config = templatefile("templates/nginx/site.conf", {
        domain  = input.domain
        backend = "127.0.0.1:${component.nginx.name == "nginx" ? 8080 : 80}"
        peers   = [node.db.address]
      })
      depends_on = ["nginx", "db/schema", node.db.component.pg]
    }
    component "shop.schema" "local" {
      url        = "file:///${self.hostname}"
      depends_on = ["app"]
    }
  }
  export "db_address" {
    value       = node.db.output.pg.address
    description = "host:port of the database"
  }
  export "domain" {
    value = input.domain
  }
  export "admin_token" {
    value     = "t-${node.web.hostname}"
    sensitive = true
  }
  inject "monitoring.agent" "monitor" {
    endpoint = "https://${export.domain}/metrics"
    host     = self.hostname
  }
  inject "base.file" "banner" {
    path       = "/etc/issue"
    content    = templatefile("templates/banner.txt", { node = self.name, domain = export.domain })
    depends_on = ["monitor"]
  }
}
