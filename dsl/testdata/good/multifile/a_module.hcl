module {
  name    = "multi"
  version = "0.2.0-rc.1"
}
