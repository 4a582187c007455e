module {
  name    = "app"
  version = "1.0.0"
}

component "mark" {
  attribute "tag" {
    type     = string
    required = true
  }
  create {
    inline = "echo \"$DTK_STEP $tag\" >> \"$DTK_DATA_DIR/marks\""
  }
  delete {
    inline = "echo \"$DTK_STEP deleted\" >> \"$DTK_DATA_DIR/marks\""
  }
}

# The app team's service, staged under the environment.
template "api" {
  input "tier" {
    type = string
  }
  node "api" {
    labels = { zone = "a" }
    component "mark" "api" { tag = input.tier }
  }
}
