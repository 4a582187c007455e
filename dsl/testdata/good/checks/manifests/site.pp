file { "/tmp/checks-example": content => "x\n" }
