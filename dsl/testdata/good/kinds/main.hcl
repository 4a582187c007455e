module {
  name    = "kinds"
  version = "1.0.0"
}

component "tool" {
  attribute "port" { type = number }
  create {
    kind    = "exec"
    program = "bin/tool"
    args    = ["--port", "8080"]
  }
  delete {
    kind    = "exec"
    program = "./tool.py"
  }
}

component "py" {
  create {
    kind    = "exec"
    program = "python3"
    args    = ["tool.py", "--check"]
    timeout = "10s"
  }
  delete {
    kind    = "exec"
    program = "/bin/true"
  }
}

component "site" {
  attribute "path" { type = string }
  create {
    kind     = "puppet"
    manifest = "manifests/site.pp"
  }
  delete {
    kind       = "puppet"
    class      = "mymod::web"
    modulepath = "modules/"
  }
}

component "play" {
  create {
    kind     = "ansible"
    playbook = "site.yml"
  }
  delete {
    kind = "ansible"
    role = "web"
  }
}

component "app" {
  attribute "image" { type = string }
  attribute "image_archive" {
    type    = string
    default = "images/app.tar"
  }
  attribute "env" { type = map(string) }
  attribute "command" { type = list(string) }
  attribute "stop_timeout" { type = number }
  create { kind = "container" }
  delete {
    kind   = "container"
    engine = "podman"
  }
}

component "wrapped" {
  attribute "dir" { type = string }
  attribute "servers" { type = list(string) }
  attribute "helper" { type = bool }
  create {
    kind   = "puppet"
    class  = "mymod::web"
    params = { path = "${dir}/web.conf", "tags" = servers }
  }
  delete {
    kind   = "ansible"
    role   = "web"
    params = { web_dir = dir }
  }
}
