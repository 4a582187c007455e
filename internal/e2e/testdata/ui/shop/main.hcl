module {
  name    = "shop"
  version = "1.0.0"
}

# A step that takes a little while, so that a deploy can be watched.
component "step" {
  attribute "seconds" {
    type    = number
    default = 1
  }
  attribute "message" {
    type     = string
    required = true
  }
  attribute "password" {
    type      = string
    default   = ""
    sensitive = true
  }
  create {
    inline = "sleep \"$seconds\"; echo \"$message\""
  }
  delete {
    inline = "true"
  }
}

# The environment: a database, with a password the dashboard must not show,
# and the web nodes the services staged under it run on.
template "env" {
  input "db_password" {
    type      = string
    sensitive = true
  }
  export "tier" {
    value = "prod"
  }
  node "db" {
    labels = { role = "db" }
    component "step" "database" {
      message  = "database ready"
      password = input.db_password
    }
  }
  node_group "web" {
    labels = { role = "web" }
    component "step" "base" {
      message = "web base ready"
    }
  }
}

# The shop's web tier, staged under the environment: two web nodes, each
# with the app and then a proxy in front of it.
template "web" {
  input "tier" {
    type = string
  }
  node_group "web" {
    labels = { role = "web" }
    count  = 2
    component "step" "app" {
      seconds = 3
      message = "app ${input.tier} up"
    }
    component "step" "proxy" {
      seconds    = 2
      message    = "proxy up"
      depends_on = [component.app]
    }
  }
}
