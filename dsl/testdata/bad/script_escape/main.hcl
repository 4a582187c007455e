module {
  name    = "m"
  version = "1.0.0"
}

component "c" {
  create { script = "../x.sh" }
  delete { script = "/etc/passwd" }
}
