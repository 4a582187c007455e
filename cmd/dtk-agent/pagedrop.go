package main

import (
	"os"
	"time"
)

// dropPagesAfterEnv names an environment variable that shortens how long
// an idle agent waits before it drops its binary's resident pages
// (drop_binary_pages; default 30 s), so that the end-to-end tests see
// drops within a second. It is a test knob, not a setting: a bad value is
// ignored.
const dropPagesAfterEnv = "DTK_DROP_BINARY_PAGES_AFTER"

func dropPagesAfter() time.Duration {
	d, err := time.ParseDuration(os.Getenv(dropPagesAfterEnv))
	if err != nil || d <= 0 {
		return 0
	}
	return d
}
