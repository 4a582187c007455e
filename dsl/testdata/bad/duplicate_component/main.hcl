module {
  name    = "m"
  version = "1.0.0"
}

component "c" {
  create { inline = "true" }
}

component "c" {
  create { inline = "true" }
}
