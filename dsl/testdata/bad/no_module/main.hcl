component "c" {
  create { inline = "true" }
}
