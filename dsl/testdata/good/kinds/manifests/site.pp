file { $facts['dtk_attributes']['path']: content => 'x' }
