module {
  name    = "fleet"
  version = "1.0.0"
}

component "slow" {
  attribute "tag" {
    type     = string
    required = true
  }
  create {
    # Each run appends one line, so the test can count runs per step.
    inline = "sleep 0.3; echo \"$DTK_STEP $tag\" >> \"$DTK_DATA_DIR/runs\""
  }
  delete {
    inline = "echo \"$DTK_STEP deleted\" >> \"$DTK_DATA_DIR/runs\""
  }
}

template "fleet" {
  input "tag" {
    type    = string
    default = "v1"
  }
  node "w1" {
    labels = { role = "worker" }
    component "slow" "a" { tag = input.tag }
    component "slow" "b" { tag = input.tag }
    component "slow" "c" { tag = input.tag }
  }
  node "w2" {
    labels = { role = "worker" }
    component "slow" "a" { tag = input.tag }
    component "slow" "b" { tag = input.tag }
    component "slow" "c" { tag = input.tag }
  }
  node "w3" {
    labels = { role = "worker" }
    component "slow" "a" { tag = input.tag }
    component "slow" "b" { tag = input.tag }
    component "slow" "c" { tag = input.tag }
  }
}
