#!/bin/bash
echo "$content" > "$path"
