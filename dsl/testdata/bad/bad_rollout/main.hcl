module {
  name    = "r"
  version = "1.0.0"
}

component "c" {
  create {
    inline = "true"
  }
}

template "web" {
  rollout {
    max_parallel     = "ten"
    canary           = "150%"
    min_healthy_time = "soon"
    health           = "ping"
    max_failures     = -1
    auto_revert      = "maybe"
    batch            = 3
  }
  rollout {
    canary = 1
  }
  node_group "web" {
    component "c" "x" {}
  }
}
