module {
  name    = "m"
  version = "1.0.0"
}

component "file" {
  attribute "content" { type = any }
  create { inline = "true" }
}

template "t" {
  node "web" {}
  node "db" {
    component "file" "a" { content = node.wbe.address }
    component "file" "b" { content = node.web.adress }
    component "file" "c" { content = [self.cpu, peer.name] }
  }
}
