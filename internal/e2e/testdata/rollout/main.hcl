module {
  name    = "rollout"
  version = "1.0.0"
}

component "page" {
  attribute "tag" {
    type     = string
    required = true
  }
  attribute "fail" {
    type    = bool
    default = false
  }
  create {
    # One line per run (step, tag, start and end in ms), so that the test
    # can count runs and see that no two nodes ran at once.
    inline = <<-EOT
      start=$(date +%s%3N)
      sleep 0.4
      echo "$tag" > "$DTK_DATA_DIR/page"
      echo "$DTK_STEP $tag $start $(date +%s%3N)" >> "$DTK_DATA_DIR/runs"
      if [ "$fail" = "true" ]; then echo "refusing $tag" >&2; exit 3; fi
    EOT
  }
}

template "web" {
  input "tag" {
    type    = string
    default = "v1"
  }
  input "fail" {
    type    = bool
    default = false
  }
  rollout {
    canary           = 1
    max_parallel     = 1
    min_healthy_time = "2s"
    auto_revert      = true
  }
  node_group "web" {
    labels = { role = "web" }
    component "page" "index" {
      tag  = input.tag
      fail = input.fail
    }
  }
}
