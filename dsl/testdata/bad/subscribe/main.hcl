module {
  name    = "m"
  version = "1.0.0"
}

component "c" {
  create { inline = "true" }
  action "reload" { inline = "true" }
}

component "svc" {
  attribute "refresh" { type = string }
  create { inline = "true" }
}

template "t" {
  node "a" {
    component "c" "x" {
      subscribe = [component.x, component.nope, node.b.component.p, "b/p"]
    }
    component "c" "y" {
      subscribe = [component.z]
      refresh   = "restart"
    }
    component "c" "z" {
      depends_on = [component.y]
    }
    component "c" "w" {
      refresh = "reload"
    }
    component "c" "v" {
      subscribe = "x"
      refresh   = "delete"
    }
  }
  node "b" {
    component "c" "p" {}
  }
  node_group "g" {
    component "c" "m" { once = true }
    component "c" "n" { subscribe = [component.m] }
  }
}
