apt-get remove -y "$name"
