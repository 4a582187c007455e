module {
  name    = "m"
  version = "1.0.0"
}

component "noimage" {
  create { kind = "container" }
}

component "types" {
  attribute "image" { type = string }
  attribute "command" { type = string }
  attribute "env" { type = list(string) }
  attribute "stop_timeout" { type = string }
  attribute "other" { type = string }
  create {
    kind   = "container"
    engine = "rkt"
  }
  delete { kind = "container" }
}
