#!/usr/bin/env bash
# Write an HTML page into the web root.
mkdir -p "$DTK_DATA_DIR/www"
cat > "$DTK_DATA_DIR/www/$name.html" <<HTML
<!doctype html>
<title>dtk hello</title>
<h1>$message</h1>
<p>data lives on ${backend:-nowhere}; deployed by dtk service $DTK_SERVICE</p>
HTML
echo "wrote $DTK_DATA_DIR/www/$name.html"
