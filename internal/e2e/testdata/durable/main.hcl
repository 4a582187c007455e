module {
  name    = "durable"
  version = "1.0.0"
}

# A step that records every run in $dir/runs and, holding a lock on
# $dir/lock for as long as any process of its run lives, records in
# $dir/overlap a run that started while another still ran. Until $dir/go
# exists it sleeps (a long step to kill the agent in).
component "slow" {
  attribute "dir" {
    type     = string
    required = true
  }
  attribute "round" {
    type     = string
    required = true
  }
  create {
    inline = <<-EOT
      exec 9>>"$dir/lock"
      flock -n 9 || echo "round $round pid $$ started while another run held the lock" >> "$dir/overlap"
      echo "start $round $$" >> "$dir/runs"
      if [ ! -f "$dir/go" ]; then
        sleep 300 &
        echo $! > "$dir/sleep.pid"
        wait $!
      fi
      echo "end $round $$" >> "$dir/runs"
    EOT
  }
}

template "app" {
  input "dir" {
    type = string
  }
  input "round" {
    type    = string
    default = "1"
  }
  node "app" {
    labels = { zone = "a" }
    component "slow" "s" {
      dir   = input.dir
      round = input.round
    }
  }
}
