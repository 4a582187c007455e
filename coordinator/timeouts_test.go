package coordinator

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

func startServerTimeouts(t *testing.T, to HTTPTimeouts) *Server {
	t.Helper()
	return startServerWith(t, func(c *Config) { c.HTTPTimeouts = to })
}

// A client that stops sending its body (stopped, or a slowloris) is cut
// off after the read timeout instead of holding a connection forever.
func TestHTTP_Server_StalledBodyIsCutOff(t *testing.T) {
	s := startServerTimeouts(t, HTTPTimeouts{Read: 500 * time.Millisecond})
	c, err := net.Dial("tcp", s.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /v1/services HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server still holds a stalled request after 5 s")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("stalled request cut off after %s", took)
	}
}

// The write timeout does not cut off a long-poll: its wait extends it.
func TestHTTP_Server_LongPollOutlivesWriteTimeout(t *testing.T) {
	s := startServerTimeouts(t, HTTPTimeouts{Write: 300 * time.Millisecond})
	if code, body := doJSON(t, "PUT", "http://"+s.HTTPAddr()+"/v1/nodes/n1", `{"name":"n1"}`); code != http.StatusOK {
		t.Fatalf("register: %d %v", code, body)
	}
	start := time.Now()
	resp, err := http.Get("http://" + s.HTTPAddr() + "/v1/nodes/n1/plan?index=999999&wait=1s")
	if err != nil {
		t.Fatalf("long-poll past the write timeout: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("long-poll: %d %s %v", resp.StatusCode, b, err)
	}
	if took := time.Since(start); took < 900*time.Millisecond {
		t.Fatalf("long-poll answered after %s, before its wait", took)
	}
}
