module {
  name    = "m"
  version = "1.0.0"
}

component "file" {
  attribute "content" { type = string }
  create { inline = "true" }
}

template "t" {
  node "n" {
    component "file" "f" {
      contnet = "hi"
      mode    = "0644"
    }
  }
}
