${greeting} to ${host}.
