module {
  name    = "base"
  version = "1.2.0"
}

component "package" {
  attribute "name" { type = string }
  attribute "version" {
    type    = string
    default = "latest-of-1.2.0"
  }
  create { inline = "apt-get install -y \"$name\"" }
  delete { inline = "apt-get remove -y \"$name\"" }
}
