module {
  name    = "m"
  version = "1.0.0"
}

component "script" {
  create { inline = "echo hi" }
  check { kind = "noop" }
}

component "program" {
  create {
    kind    = "exec"
    program = "true"
  }
  check {
    kind  = "noop"
    user  = "www-data"
    inline = "true"
  }
}

component "noop_create" {
  create { kind = "noop" }
}

component "noop_action" {
  create { inline = "true" }
  action "verify" { kind = "noop" }
}
