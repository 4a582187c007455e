module {
  name    = "app"
  version = "1.0.0"
}

component "c" {
  attribute "v" {
    type    = any
    default = null
  }
  create { inline = "true" }
}

template "t" {
  node "a" {
    component "c" "x" { v = node.b.component.y.v }
  }
  node "b" {
    component "c" "y" {
      v          = "y"
      depends_on = ["z"]
    }
    component "c" "z" {
      depends_on = [node.a.component.x]
    }
  }
}
