module {
  name        = "hello"
  version     = "1.0.0"
  description = "A greeting"
}

component "file" {
  description = "A file with content"
  attribute "path" {
    type        = string
    required    = true
    description = "where"
  }
  attribute "content" {
    type    = string
    default = "hi"
  }
  attribute "port" {
    type    = number
    default = 8080
  }
  attribute "tags" {
    type    = list(string)
    default = []
  }
  attribute "extra" { type = any }
  create {
    script  = "scripts/create.sh"
    timeout = "2m"
  }
  delete {
    inline = <<-EOT
      rm -f "$path"
    EOT
  }
}

template "site" {
  description = "two nodes"
  input "greeting" {
    type    = string
    default = "hello"
  }
  input "port" { type = number }
  input "opts" {
    type    = map(any)
    default = { a = 1, b = "x" }
  }
  node "web" {
    labels = { role = "web" }
    component "file" "index" {
      path    = "/tmp/index.html"
      content = "${input.greeting} from ${self.name}"
      port    = input.port
      tags    = [for k, v in input.opts : "${k}=${v}"]
    }
  }
  node "db" {
    labels = { role = "db", "zone" = "a" }
    component "file" "conf" {
      path    = "/tmp/db.conf"
      content = <<-EOT
        peer=${node.web.address}
        cpus=${self["cpus"]}
      EOT
      extra   = node["web"].labels.role
    }
  }
  node "any" {}
}
