module {
  name    = "app"
  version = "1.0.0"
}

component "c" {
  attribute "v" { type = any }
  create { inline = "true" }
}

template "t" {
  input "port" { type = number }
  input "replicas" { type = number }
  input "name" { type = string }
  input "pin" {
    type      = number
    sensitive = true
  }
  node "a" {
    component "c" "x" { v = [input.port, input.replicas, input.name, input.pin] }
  }
}
