// Package compat runs franz-go (kgo and kadm), a client strict about the Kafka protocol,
// against a Sluice broker this test starts from $SLUICE_BIN.
//
// TestMain starts one broker on a loopback port the kernel picks (read back from its
// `ready listening=IP:PORT` log line), with a fresh data dir, and stops it at the end. Each
// test uses its own topics and groups, so they do not interfere.
package compat

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// brokerAddr is the running broker's host:port.
var brokerAddr string

const readyTimeout = 30 * time.Second

var readyLine = regexp.MustCompile(`ready listening=(\S+)`)

// logTail keeps the broker's last lines for failure reports.
type logTail struct {
	mu    sync.Mutex
	lines []string
}

func (l *logTail) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	if len(l.lines) > 200 {
		l.lines = l.lines[len(l.lines)-200:]
	}
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

var brokerLog logTail

func TestMain(m *testing.M) {
	bin := os.Getenv("SLUICE_BIN")
	if bin == "" {
		fmt.Fprintln(os.Stderr, "SLUICE_BIN is not set: point it at a sluice binary (make test does)")
		os.Exit(2)
	}
	dir, err := os.MkdirTemp("", "sluice-franz-go-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--data-dir", dir+"/data", "--cores", strconv.Itoa(cores()))
	cmd.Env = append(os.Environ(), "RUST_LOG=info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "start %s: %v\n", bin, err)
		os.Exit(2)
	}
	ready := make(chan string, 1)
	go func() {
		scanner := bufio.NewScanner(stderr)
		scanner.Buffer(make([]byte, 64*1024), 1024*1024)
		for scanner.Scan() {
			line := scanner.Text()
			brokerLog.add(line)
			if m := readyLine.FindStringSubmatch(line); m != nil {
				select {
				case ready <- strings.Trim(m[1], `"`):
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	code := 2
	select {
	case brokerAddr = <-ready:
		code = m.Run()
	case <-time.After(readyTimeout):
		fmt.Fprintf(os.Stderr, "broker not ready in %v; log:\n%s\n", readyTimeout, brokerLog.String())
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "broker log tail:\n%s\n", brokerLog.String())
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// testContext is a per-test deadline, so a hang fails the test instead of the suite timeout.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// cores: two shards exercise cross-shard routing, but never more than the machine has (the
// broker pins one shard per core).
func cores() int {
	n := runtime.NumCPU()
	if n > 2 {
		return 2
	}
	return n
}
