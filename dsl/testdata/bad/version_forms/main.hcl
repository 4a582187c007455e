module {
  name    = "m"
  version = "1.0.0-rc.01"
  requires "a" { version = "^1.2" }
  requires "b" { version = "~1.2" }
  requires "c" { version = ">= 1.0 < 2.0" }
  requires "d" { version = "= 1.0.0+build.5" }
  requires "e" { version = ">= 1.0.0-rc.01" }
  requires "f" { version = "~> 01.2" }
  requires "g" { version = "1.x" }
}
