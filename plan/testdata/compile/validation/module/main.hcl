module {
  name    = "app"
  version = "1.0.0"
}

component "server" {
  attribute "port" {
    type = number
    validation {
      condition     = value > 0 && value < 65536
      error_message = "port must be between 1 and 65535"
    }
  }
  attribute "password" {
    type      = string
    sensitive = true
    validation {
      condition     = length(value) >= 12
      error_message = "password must have at least 12 characters"
    }
  }
  attribute "mode" {
    type = string
    validation {
      condition     = contains(["a", "b"], value)
      error_message = "mode is a or b"
    }
  }
  create { inline = "true" }
}

template "t" {
  input "replicas" {
    type = number
    validation {
      condition     = value >= 1
      error_message = "at least one replica"
    }
  }
  input "password" {
    type      = string
    sensitive = true
  }
  node "a" {
    component "server" "s" {
      port     = 70000
      password = input.password
    }
  }
}
