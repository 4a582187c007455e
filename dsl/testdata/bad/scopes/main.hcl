module {
  name    = "m"
  version = "1.0.0"
}

component "c" {
  attribute "v" { type = any }
  output "url" {}
  create { inline = "true" }
}

template "t" {
  input "i" { type = string }
  node "a" {
    component "c" "x" { v = component.y.v }
    component "c" "y" {
      v = [
        component.z.v,
        component.x.vv,
        output.x.ur,
        component.y.v,
        component,
        component[input.i].v,
        output.x.url,
        node.b.component.p.v,
        node.b.output.p.address,
        node.b.component.q.v,
        node.a.component.y.v,
        fromat("%s", input.i),
        upper(input.i),
        imput.i,
        var.x,
      ]
    }
  }
  node "b" {
    component "c" "p" { v = output.x.url }
  }
  export "e1" {
    value = [self.name, component.x.v, node.a.component.x.v, input.i, export.e2]
  }
  export "e2" {}
  inject "c" "j" {
    v = [export.e1, export.e3, self.address, input.i, node.a.address, component.x.v]
  }
}
