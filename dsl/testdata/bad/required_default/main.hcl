module {
  name    = "m"
  version = "1.0.0"
}

component "c" {
  attribute "path" {
    type     = string
    required = true
    default  = "/tmp/x"
  }
  create { inline = "true" }
}
