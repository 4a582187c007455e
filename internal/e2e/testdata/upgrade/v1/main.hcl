module {
  name    = "upg"
  version = "1.0.0"
}

component "file" {
  attribute "name" {
    type     = string
    required = true
  }
  attribute "content" {
    type    = string
    default = "one"
  }
  create {
    inline = "mkdir -p \"$DTK_DATA_DIR/upg\" && printf '%s' \"$content\" > \"$DTK_DATA_DIR/upg/$name\""
  }
  delete {
    inline = "rm -f \"$DTK_DATA_DIR/upg/$name\""
  }
}

template "t" {
  node "n" {
    component "file" "a" { name = "a" }
    component "file" "b" { name = "b" }
    component "file" "c" { name = "c" }
  }
}
