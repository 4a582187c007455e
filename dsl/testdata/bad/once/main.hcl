module {
  name    = "m"
  version = "1.0.0"
}

component "c" {
  attribute "once" { type = bool }
  create { inline = "true" }
}

component "d" {
  create { inline = "true" }
}

template "t" {
  input "flag" {
    type    = bool
    default = true
  }
  node "single" {
    component "d" "a" { once = true }
  }
  node_group "g" {
    component "d" "b" { once = "true" }
    component "d" "c" { once = input.flag }
    component "d" "e" { once = null }
    component "d" "f" { once = 1 }
    component "d" "ok" { once = true }
  }
  inject "d" "i" { once = true }
}
