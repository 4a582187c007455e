module {
  name    = "m"
  version = "1.0.0"
}

component "c" {
  attribute "v" {
    type     = any
    required = true
  }
  create { inline = "true" }
}

template "t" {
  node "a" {}
  export "e" { value = 1 }
  export "e" { value = 2 }
  export "Bad-Name" { value = 3 }
  export "nothing" {
    description = "no value"
  }
  inject "c" "j" { v = 1 }
  inject "c" "j" { v = 2 }
  inject "d" "k" {}
  inject "c" "l" {}
  inject "c" "m" {
    v = 1
    w = 2
  }
}
