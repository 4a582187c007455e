module {
  name    = "u"
  version = "1.0.0"
}

component "c" {
  create {
    inline = "true"
    user   = ""
  }
  delete {
    inline = "true"
    user   = "9lives"
    group  = "a b"
  }
  check {
    inline = "true"
    user   = ["app"]
  }
}

component "box" {
  attribute "image" { type = string }
  create {
    kind  = "container"
    user  = "app"
    group = "app"
  }
}
