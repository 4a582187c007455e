module {
  name    = "spark"
  version = "1.0.0"
}

component "conf" {
  attribute "path" { type = string }
  attribute "content" { type = any }
  create { inline = "printf '%s' \"$content\" > \"$path\"" }
}

template "cluster" {
  input "workers" {
    type    = number
    default = 3
  }
  node "master" {
    labels = { role = "spark-master" }
    facts  = { os = "linux", arch = "amd64" }
    component "conf" "workers" {
      path = "/etc/spark/workers"
      content = join("\n", node.workers[*].address)
    }
    component "conf" "size" {
      path    = "/etc/spark/size"
      content = "${length(node.workers)} workers, first ${node.workers[0].hostname}"
    }
  }
  node_group "workers" {
    labels = { role = "spark-worker" }
    facts  = { cpus = 8 }
    count  = 3
    component "conf" "master" {
      path    = "/etc/spark/master"
      content = "spark://${node.master.address}:7077 (${self.hostname}, ${self.labels.role})"
    }
  }
  node_group "edge" {
    facts = { os = "linux" }
    component "conf" "peers" {
      path    = "/etc/peers"
      content = [for n in node.edge : n.name if n.name != self.name]
    }
  }
}
