module {
  name    = "app"
  version = "1.0.0"
}

component "conf" {
  attribute "content" { type = any }
  create { inline = "true" }
}

template "web" {
  node "web" {
    labels = { role = "web" }
    component "conf" "c" { content = self.name }
  }
}
