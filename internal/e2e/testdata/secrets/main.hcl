module {
  name    = "secrets"
  version = "1.0.0"
}

component "login" {
  attribute "user" {
    type     = string
    required = true
  }
  attribute "password" {
    type      = string
    required  = true
    sensitive = true
  }
  create {
    # Uses the password without writing it anywhere; records a digest of it.
    inline = "printf '%s' \"$password\" | sha256sum | cut -c1-16 > \"$DTK_DATA_DIR/login-$user\"; echo \"logged in as $user with $password\""
  }
}

template "app" {
  input "db_password" {
    type      = string
    sensitive = true
  }
  node "app" {
    labels = { zone = "a" }
    component "login" "db" {
      user     = "app"
      password = input.db_password
    }
  }
}
