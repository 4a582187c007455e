module {
  name    = "m"
  version = "1.0.0"
}

variable "x" {}

component "c" {
  attribute "a" {
    type     = string
    optional = true
  }
  create { inline = "true" }
  update { inline = "true" }
}
