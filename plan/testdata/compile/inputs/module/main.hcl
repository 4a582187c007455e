module {
  name    = "app"
  version = "1.0.0"
}

component "conf" {
  attribute "content" { type = any }
  create { inline = "true" }
}

template "web" {
  input "region" { type = string }    # from the parent's export
  input "replicas" { type = number }  # from the parent's export, converted
  input "dns" { type = list(string) } # from the parent's export
  input "port" {                      # from the operator
    type    = number
    default = 80
  }
  input "name" {                      # default
    type    = string
    default = "shop"
  }
  node "web" {
    labels = { role = "web" }
    component "conf" "c" {
      content = "${input.name} in ${input.region}: ${input.replicas} replicas on port ${input.port}, dns ${join(",", input.dns)}"
    }
  }
}
