module {
  name    = "secure"
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

template "zone" {
  input "tag" {
    type    = string
    default = "v1"
  }
  # Placed by the operator label the join token gave: a node cannot give
  # itself this label.
  node "member" {
    labels = { zone = "a" }
    component "mark" "m" { tag = input.tag }
  }
}
