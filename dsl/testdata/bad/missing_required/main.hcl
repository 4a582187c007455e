module {
  name    = "m"
  version = "1.0.0"
}

component "file" {
  attribute "path" {
    type     = string
    required = true
  }
  create { inline = "true" }
}

template "t" {
  node "n" {
    component "file" "f" {}
  }
}
