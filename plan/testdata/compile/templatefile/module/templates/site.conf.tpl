# ${me}
upstream app {
%{ for b in backends ~}
  server ${b}:8080;
%{ endfor ~}
}
server {
  server_name ${upper(domain)};
  set $db "${db}";
}
