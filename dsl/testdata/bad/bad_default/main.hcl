module {
  name    = "m"
  version = "1.0.0"
}

component "c" {
  attribute "port" {
    type    = number
    default = "eighty"
  }
  attribute "tags" {
    type    = list(string)
    default = { a = 1 }
  }
  attribute "kind" { type = strin }
  create { inline = "true" }
}
