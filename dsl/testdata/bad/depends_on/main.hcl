module {
  name    = "m"
  version = "1.0.0"
}

component "c" {
  create { inline = "true" }
}

template "t" {
  node "a" {
    component "c" "x" {
      depends_on = ["y", "b/p", "z", "c/p", "b/q", "x", 3, "a/b/c", component.x, component.y.v, node.b.component.p, node.b.p, upper("y")]
    }
    component "c" "y" {
      depends_on = "x"
    }
  }
  node "b" {
    component "c" "p" { depends_on = [node.a.component.x, "a/y"] }
  }
  inject "c" "i1" { depends_on = ["i2", "i3", "a/x", component.i2, "i1"] }
  inject "c" "i2" {}
}
