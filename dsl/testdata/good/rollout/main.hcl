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
    max_parallel     = "10%"
    canary           = 2
    min_healthy_time = "1m30s"
    health           = "check"
    max_failures     = "2%"
    auto_revert      = true
    auto_promote     = false
  }
  node_group "web" {
    component "c" "x" {}
  }
}

template "plain" {
  rollout {
    max_parallel = 1
  }
  node "one" {
    component "c" "x" {}
  }
}
