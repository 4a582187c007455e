package bench

import "testing"

func TestHostAddr_ThreeAndFourOctets(t *testing.T) {
	for _, c := range []struct {
		prefix string
		n      int
		want   string
	}{
		{"127.0.201", 1, "127.0.201.1"},
		{"127.0.202", 13, "127.0.202.13"},
		{"127.0.208.100", 1, "127.0.208.101"},
		{"127.0.208.100", 13, "127.0.208.113"},
	} {
		if got := hostAddr(c.prefix, c.n); got != c.want {
			t.Errorf("hostAddr(%q, %d) = %q, want %q", c.prefix, c.n, got, c.want)
		}
	}
}
