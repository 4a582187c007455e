module {
  name    = "dryrun"
  version = "1.0.0"
}

component "page" {
  description = "A page naming its node; its check tells whether it holds the message."
  attribute "message" {
    type     = string
    required = true
  }
  attribute "token" {
    type      = string
    sensitive = true
  }
  create {
    inline = <<-EOT
      mkdir -p "$DTK_DATA_DIR/pages"
      printf '%s' "$message" > "$DTK_DATA_DIR/pages/index.txt"
    EOT
  }
  check {
    inline = "[ \"$(cat \"$DTK_DATA_DIR/pages/index.txt\" 2>/dev/null)\" = \"$message\" ]"
  }
}

component "server" {
  description = "Where the site would listen: a file holding the port (no check: a dry run cannot predict it)."
  attribute "port" {
    type = number
  }
  create {
    inline = "printf '%s' \"$port\" > \"$DTK_DATA_DIR/port\""
  }
}

template "site" {
  input "greeting" {
    type    = string
    default = "Hello"
  }
  input "token" {
    type      = string
    default   = "first-t0ken-value"
    sensitive = true
  }
  node_group "web" {
    labels = { role = "web" }
    component "page" "index" {
      message = "${input.greeting} from ${self.name}"
      token   = input.token
    }
    # A node's port label (set by an operator) wins over the default.
    component "server" "site" {
      port = lookup(self.labels, "port", 8080)
    }
  }
}
