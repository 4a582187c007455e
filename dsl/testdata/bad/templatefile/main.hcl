module {
  name    = "m"
  version = "1.0.0"
}

component "c" {
  attribute "v" { type = any }
  create { inline = "true" }
}

template "t" {
  input "i" { type = string }
  node "a" {
    component "c" "a" { v = templatefile("conf/app.conf", {}) }
    component "c" "b" { v = templatefile("templates/ap.conf", {}) }
    component "c" "c" { v = templatefile("templates/app.conf", { port = 1 }) }
    component "c" "d" { v = templatefile("templates/app.conf") }
    component "c" "e" { v = templatefile("templates/broken.conf", {}) }
    component "c" "f" { v = templatefile("templates/${input.i}", {}) }
    component "c" "g" { v = templatefile("templates/app.conf", { port = 1, host = "h" }) }
    component "c" "h" { v = templatefile("templates/nested.conf", {}) }
  }
}
