class mymod::web (String $path) {
  file { $path: content => 'x' }
}
