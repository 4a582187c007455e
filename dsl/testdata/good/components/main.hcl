module {
  name    = "db"
  version = "2.1.0"
}

component "postgres" {
  description = "A PostgreSQL server"
  attribute "port" {
    type        = number
    default     = 5432
    description = "TCP port"
    validation {
      condition     = value > 0 && value < 65536
      error_message = "port must be between 1 and 65535"
    }
    validation {
      condition     = floor(value) == value
      error_message = "port must be a whole number"
    }
  }
  attribute "password" {
    type      = string
    required  = true
    sensitive = true
    validation {
      condition     = length(value) >= 12
      error_message = "password must have at least 12 characters"
    }
  }
  attribute "databases" {
    type    = list(string)
    default = ["app"]
    validation {
      condition     = length(value) > 0 && !contains(value, "postgres")
      error_message = "name at least one database, other than postgres"
    }
  }
  output "address" {
    description = "host:port clients connect to"
  }
  output "admin_password" {
    sensitive = true
  }
  create {
    inline = <<-EOT
      echo "address=$(hostname):$port" >> "$DTK_OUTPUTS"
    EOT
  }
  delete { inline = "true" }
  check {
    inline  = "pg_isready -p \"$port\""
    timeout = "10s"
  }
  action "restart" {
    inline = "systemctl restart postgresql"
  }
  action "backup" {
    inline  = "pg_dumpall > /var/backups/all.sql"
    timeout = "1h"
  }
}

template "single" {
  input "password" {
    type        = string
    sensitive   = true
    description = "the superuser's password"
    validation {
      condition     = length(value) >= 12
      error_message = "the password needs 12 characters or more"
    }
  }
  input "port" {
    type    = number
    default = 5432
    validation {
      condition     = value >= 1024
      error_message = "use an unprivileged port"
    }
  }
  node "db" {
    component "postgres" "main" {
      password = input.password
      port     = input.port
    }
  }
}
