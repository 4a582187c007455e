module {
  name    = "m"
  version = "1.0.0"
}

component "missing" {
  create {
    kind = "exec"
    args = ["x"]
  }
  delete {
    kind    = "exec"
    program = "bin/nope"
  }
}

component "plain" {
  create {
    kind    = "exec"
    program = "bin/plain"
  }
  delete {
    kind    = "exec"
    program = "tool.py"
  }
}

component "args" {
  create {
    kind    = "exec"
    program = "bin/tool"
    args    = "--port 80"
  }
  delete {
    kind    = "exec"
    program = "../outside"
  }
}

component "empty" {
  create {
    kind    = "exec"
    program = ""
    args    = ["a", null]
  }
}
