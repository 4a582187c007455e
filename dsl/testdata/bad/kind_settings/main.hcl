module {
  name    = "m"
  version = "1.0.0"
}

component "c" {
  create {
    script  = "x.sh"
    program = "bin/tool"
  }
  delete {
    kind   = "exec"
    inline = "echo hi"
    engine = "podman"
  }
}

component "d" {
  create {
    kind    = "ansible"
    playbok = "site.yml"
  }
}
