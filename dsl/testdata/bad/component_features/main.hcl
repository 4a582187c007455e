module {
  name    = "m"
  version = "1.0.0"
}

component "c" {
  attribute "depends_on" { type = string }
  attribute "port" {
    type      = number
    default   = 80
    sensitive = "maybe"
    validation {
      condition     = value > 1024
      error_message = "use an unprivileged port"
    }
    validation {
      condition     = self.port > 0
      error_message = "positive"
    }
    validation {
      condition     = value
      error_message = "   "
    }
    validation {
      error_message = "no condition"
    }
  }
  attribute "name" {
    type    = string
    default = "x"
    validation {
      condition     = length(value)
      error_message = "not a bool"
    }
    validation {
      condition     = templatefile("templates/x", {}) == value
      error_message = "rendered"
    }
  }
  output "address" {}
  output "address" {}
  output "Addr" {}
  output "port" { sensitive = 2 }
  create { inline = "true" }
  check { inline = "true" }
  check { inline = "false" }
  action "create" { inline = "true" }
  action "restart" { inline = "true" }
  action "restart" { inline = "true" }
  action "Stop" { inline = "true" }
  action "noop" {}
}

template "t" {
  input "port" {
    type    = number
    default = 1
    validation {
      condition     = value > input.port
      error_message = "x"
    }
    validation {
      condition     = value > 10
      error_message = "port must exceed 10"
    }
  }
  node "n" {}
}
