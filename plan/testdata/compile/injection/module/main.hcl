module {
  name    = "job"
  version = "1.0.0"
}

component "job" {
  attribute "master_url" { type = string }
  create { inline = "submit" }
}

template "job" {
  input "master_url" { type = string }
  node "driver" {
    labels = { role = "worker" }
    component "job" "run" { master_url = input.master_url }
  }
}
