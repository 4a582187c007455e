module {
  name    = "m"
  version = "1.0.0"
}

component "file" {
  attribute "content" { type = string }
  create { inline = "true" }
}

template "t" {
  input "greeting" { type = string }
  node "n" {
    component "file" "f" {
      content = "${input.greting}!"
    }
  }
}
