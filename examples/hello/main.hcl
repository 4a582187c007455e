module {
  name        = "hello"
  version     = "1.0.0"
  description = "A two-node greeting site: a tiny key/value store on one node, a web page served over HTTP on another."
}

component "kv_store" {
  description = "A file-backed key/value store under the agent's data dir."
  attribute "key" {
    type     = string
    required = true
  }
  attribute "value" {
    type     = string
    required = true
  }
  create {
    script  = "scripts/kv-put.sh"
    timeout = "30s"
  }
  delete {
    inline = "rm -f \"$DTK_DATA_DIR/kv/$key\""
  }
}

component "page" {
  description = "An HTML page in the web root."
  attribute "name" {
    type    = string
    default = "index"
  }
  attribute "message" {
    type     = string
    required = true
  }
  attribute "backend" {
    type        = string
    default     = ""
    description = "Address of the node holding the data, shown on the page."
  }
  create {
    script = "scripts/page.sh"
  }
  delete {
    inline = "rm -f \"$DTK_DATA_DIR/www/$name.html\""
  }
}

component "http_server" {
  description = "A static HTTP server (python3 -m http.server) over the web root."
  attribute "address" {
    type     = string
    required = true
  }
  attribute "port" {
    type    = number
    default = 8080
  }
  create {
    script  = "scripts/http-start.sh"
    timeout = "30s"
  }
  delete {
    script = "scripts/http-stop.sh"
  }
}

template "site" {
  description = "Greeting page on a web node, its data on a db node."

  input "greeting" {
    type        = string
    default     = "Hello"
    description = "The greeting to show."
  }
  input "port" {
    type        = number
    default     = 8080
    description = "Port the web node serves on (on its own address)."
  }

  node "db" {
    labels = { role = "db" }
    component "kv_store" "greeting" {
      key   = "greeting"
      value = input.greeting
    }
  }

  node "web" {
    labels = { role = "web" }
    component "page" "index" {
      message = "${input.greeting} from ${self.name}"
      backend = node.db.address
    }
    component "http_server" "site" {
      address = self.address
      port    = input.port
    }
  }
}
