module {
  name    = "m"
  version = "1.0.0"
}

component "c" {
  attribute "v" { type = any }
  create { inline = "true" }
}

template "t" {
  node "n" {
    facts = { os = "linux", oss = "linux", labels = "x", memory = 4 }
    count = 2
    component "c" "a" { v = node.workers.address }
    component "c" "b" { v = node.workers.component.x.v }
    component "c" "c" { v = node.workers[0].adress }
    component "c" "d" { v = node.workers[*].hostnme }
    component "c" "e" { v = length(node.workers) }
  }
  node_group "workers" {
    count = 0
    facts = ["linux"]
    component "c" "x" { v = 1 }
  }
  node_group "half" { count = 1.5 }
  node_group "word" { count = "three" }
  node_group "n" {}
}
