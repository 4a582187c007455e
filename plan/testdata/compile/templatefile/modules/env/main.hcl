module {
  name    = "env"
  version = "1.0.0"
}

component "file" {
  attribute "path" { type = string }
  attribute "content" { type = string }
  create { inline = "printf '%s' \"$content\" > \"$path\"" }
}

template "env" {
  node_group "all" {}
  export "motd" { value = "Welcome" }
  inject "file" "motd" {
    path    = "/etc/motd"
    content = templatefile("templates/motd.tpl", { greeting = export.motd, host = self.hostname })
  }
}
