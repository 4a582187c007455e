module {
  name        = "stack"
  version     = "1.0.0"
  description = "A three-level stack: an environment, a backend deployed with respect to it, a frontend deployed with respect to the backend."
}

# --- components -------------------------------------------------------

component "marker" {
  description = "Records which environment a node belongs to."
  attribute "env" {
    type     = string
    required = true
  }
  create {
    inline = "mkdir -p \"$DTK_DATA_DIR/stack\" && echo \"$env\" > \"$DTK_DATA_DIR/stack/environment\""
  }
  delete {
    inline = "rm -f \"$DTK_DATA_DIR/stack/environment\""
  }
}

component "monitor" {
  description = "A monitoring agent's configuration: the environment injects it into everything deployed under it."
  attribute "endpoint" {
    type     = string
    required = true
  }
  create {
    inline = "mkdir -p \"$DTK_DATA_DIR/monitor\" && echo \"endpoint=$endpoint\" > \"$DTK_DATA_DIR/monitor/$DTK_SERVICE.conf\""
  }
  delete {
    inline = "rm -f \"$DTK_DATA_DIR/monitor/$DTK_SERVICE.conf\""
  }
}

component "store" {
  description = "A key/value store; its location is an output other nodes consume."
  attribute "key" {
    type     = string
    required = true
  }
  attribute "value" {
    type     = string
    required = true
  }
  output "location" {
    description = "Where the value is stored."
  }
  create {
    inline = <<-EOT
      mkdir -p "$DTK_DATA_DIR/store"
      echo "$value" > "$DTK_DATA_DIR/store/$key"
      echo "location=$DTK_NODE:$DTK_DATA_DIR/store/$key" >> "$DTK_OUTPUTS"
    EOT
  }
  delete {
    inline = "rm -f \"$DTK_DATA_DIR/store/$key\""
  }
}

component "page" {
  description = "A page that shows where its data lives."
  attribute "name" {
    type     = string
    required = true
  }
  attribute "text" {
    type     = string
    required = true
  }
  create {
    inline = "mkdir -p \"$DTK_DATA_DIR/pages\" && echo \"$text\" > \"$DTK_DATA_DIR/pages/$name.txt\""
  }
  delete {
    inline = "rm -f \"$DTK_DATA_DIR/pages/$name.txt\""
  }
}

# --- level 1: the environment ------------------------------------------

template "env" {
  description = "An environment: every node it takes is marked, and monitoring is injected into what is deployed under it."
  input "domain" {
    type    = string
    default = "dev.example"
  }
  node_group "all" {
    labels = { stack = "yes" }
    component "marker" "mark" {
      env = input.domain
    }
  }
  export "domain" {
    value = input.domain
  }
  export "metrics" {
    value = "https://metrics.${input.domain}/ingest"
  }
  inject "monitor" "monitoring" {
    endpoint = export.metrics
  }
}

# --- level 2: a backend, deployed with respect to an environment -------

template "backend" {
  input "domain" {
    type        = string
    description = "No default: filled in from the environment's export."
  }
  input "greeting" {
    type    = string
    default = "hello"
  }
  node "db" {
    labels = { role = "db" }
    component "store" "data" {
      key   = "greeting"
      value = input.greeting
    }
  }
  node "api" {
    labels = { role = "web" }
    component "page" "status" {
      name = "api"
      text = "api.${input.domain} reads ${node.db.output.data.location}"
    }
  }
  export "api_address" {
    value = node.api.address
  }
}

# --- level 3: a frontend, deployed with respect to the backend ---------

template "frontend" {
  input "api_address" {
    type = string
  }
  input "domain" {
    type = string
  }
  node "web" {
    labels = { role = "web" }
    component "page" "home" {
      name = "home"
      text = "www.${input.domain} talks to ${input.api_address}"
    }
  }
}
