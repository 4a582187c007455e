apt-get install -y "$name"
