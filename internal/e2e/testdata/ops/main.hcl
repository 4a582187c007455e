module {
  name    = "ops"
  version = "1.0.0"
}

component "file" {
  description = "A file under the agent's data dir, with drift detection."
  attribute "name" {
    type     = string
    required = true
  }
  attribute "content" {
    type     = string
    required = true
  }
  attribute "secret" {
    type      = string
    default   = "hunter2-default"
    sensitive = true
  }
  create {
    inline = <<-EOT
      mkdir -p "$DTK_DATA_DIR/files"
      printf '%s' "$content" > "$DTK_DATA_DIR/files/$name"
      echo "wrote $name (secret is $secret)"
    EOT
  }
  check {
    inline = "[ \"$(cat \"$DTK_DATA_DIR/files/$name\" 2>/dev/null)\" = \"$content\" ]"
  }
  delete {
    inline = "rm -f \"$DTK_DATA_DIR/files/$name\""
  }
  action "show" {
    inline = "echo \"$name: $(cat \"$DTK_DATA_DIR/files/$name\") ($${suffix:-no suffix})\""
  }
}

component "sleeper" {
  attribute "seconds" {
    type    = number
    default = 0
  }
  create {
    # The sleep is a child: cancel and timeouts must kill the whole group.
    inline  = "echo $$ > \"$DTK_SCRATCH/pid\"; sleep \"$seconds\" & echo $! > \"$DTK_SCRATCH/child\"; wait; echo slept"
    timeout = "2m"
  }
}

component "hang" {
  create {
    inline  = "sleep 30 & echo $! > \"$DTK_SCRATCH/child\"; wait"
    timeout = "1s"
  }
}

template "files" {
  input "content" {
    type    = string
    default = "v1"
  }
  input "secret" {
    type      = string
    default   = "s3cr3t-value"
    sensitive = true
  }
  node "n" {
    component "file" "a" {
      name    = "a.txt"
      content = input.content
      secret  = input.secret
    }
  }
}

template "slow" {
  input "seconds" {
    type    = number
    default = 0
  }
  node "n" {
    component "sleeper" "zz" {
      seconds = input.seconds
    }
  }
}

template "hang" {
  node "n" {
    component "hang" "h" {}
  }
}
