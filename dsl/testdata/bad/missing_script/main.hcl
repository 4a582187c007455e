module {
  name    = "m"
  version = "1.0.0"
}

component "c" {
  create { script = "scripts/craete.sh" }
  delete { script = "scripts" }
}
