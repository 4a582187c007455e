module {
  name    = "env"
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

# The platform team's environment.
template "env" {
  node "base" {
    labels = { zone = "a" }
    component "mark" "base" { tag = "env" }
  }
  export "tier" {
    value = "prod"
  }
}
