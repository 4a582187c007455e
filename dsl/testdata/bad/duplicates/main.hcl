module {
  name    = "m"
  version = "1.0.0"
}

component "c" {
  attribute "a" { type = string }
  attribute "a" { type = number }
  create { inline = "true" }
  create { inline = "false" }
}

template "t" {
  input "i" { type = string }
  input "i" { type = string }
  node "n" {
    component "c" "x" {}
    component "c" "x" {}
  }
  node "n" {}
}

template "t" {
  node "n" {}
}
