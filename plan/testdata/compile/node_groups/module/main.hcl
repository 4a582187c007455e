module {
  name    = "spark"
  version = "1.0.0"
}

component "conf" {
  attribute "content" { type = any }
  create { inline = "true" }
}

template "cluster" {
  node "master" {
    labels = { role = "spark" }
    facts  = { cpus = 8 }
    component "conf" "workers" {
      content = {
        count     = length(node.workers)
        addresses = node.workers[*].address
        first     = node.workers[0].hostname
        edges     = [for e in node.edge : e.name]
      }
    }
  }
  node_group "workers" {
    labels = { role = "spark" }
    count  = 2
    component "conf" "worker" { content = "master ${node.master.address}, me ${self.address}" }
  }
  node_group "edge" {
    facts = { os = "linux", arch = "arm64" }
    component "conf" "edge" { content = self.arch }
  }
}
