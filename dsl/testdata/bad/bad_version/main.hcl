module {
  name    = "Bad Name"
  version = "1.0"
}
