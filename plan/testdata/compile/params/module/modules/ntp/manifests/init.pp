class ntp (Array[String] $servers, String $config = '/etc/ntp.conf') {}
