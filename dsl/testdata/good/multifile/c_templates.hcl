# Uses a component declared in another file.
template "one" {
  input "pkgs" { type = list(string) }
  node "only" {
    component "pkg" "curl" { name = input.pkgs[0] }
  }
}

template "two" {
  node "a" {
    component "pkg" "git" { name = "git" }
  }
}
