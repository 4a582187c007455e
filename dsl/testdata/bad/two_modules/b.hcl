component "c" {
  create { inline = "true" }
}

module {
  name    = "other"
  version = "1.0.0"
}
