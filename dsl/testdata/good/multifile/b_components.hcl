component "pkg" {
  attribute "name" {
    type     = string
    required = true
  }
  create {
    script = "./sh/install.sh"
    kind   = "bash"
  }
  delete { script = "sh/../sh/remove.sh" }
}
