module {
  name = "m"
}

component "Web" {
  attribute "max-conns" { type = number }
  attribute "port" {}
  delete { inline = "true" }
}

component "file" {
  attribute "mode" { type = string }
  create { inline = "  " }
}

component {
  create { inline = "true" }
}

template "empty" {}

template "t" {
  node "n" {
    labels = { role = ["a"] }
    component "file" "My_File" {
      mode = "0644"
      lifecycle {}
    }
  }
}
