module {
  name    = "m"
  version = "1.0.0"
}

component "c" {
  attribute "v" { type = any }
  create { inline = "true" }
}

template "t" {
  input "env" { type = string }
  input "workers" {
    type    = number
    default = 2
  }
  node "web" {
    labels = { env = input.env, role = "web" }
    facts  = { os = lower(input.env == "prod" ? "LINUX" : "linux") }
    component "c" "a" { v = 1 }
  }
  node_group "workers" {
    labels = merge({ role = "worker" }, { env = input.env })
    count  = input.workers
    component "c" "b" { v = 1 }
  }
  node_group "static" {
    labels = merge({ role = "static" }, { tier = "a" })
    count  = max(1, 2)
  }
}
