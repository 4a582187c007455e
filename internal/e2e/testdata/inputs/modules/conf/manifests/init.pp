# A class as a public module would have it: typed parameters with defaults.
class conf (
  String $path,
  Array[String] $servers,
  Pattern[/\A[0-7]{4}\z/] $mode = '0640',
) {
  file { $path:
    content => "servers=${servers.join(',')}\n",
    mode    => $mode,
  }
}
