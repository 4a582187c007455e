module {
  name    = "env"
  version = "1.0.0"
}

template "env" {
  input "db_password" {
    type      = string
    sensitive = true
  }
  node_group "all" {}
  export "db_password" {
    value     = input.db_password
    sensitive = true
  }
  export "api_key" {
    # not declared sensitive, but computed from a sensitive input
    value = "key-${input.db_password}"
  }
}
