package main

import (
	"strings"
	"testing"
)

func TestReplaceSection(t *testing.T) {
	s := &suite{name: "lock", title: "lock vs peers"}
	tests := []struct {
		name, doc, want string
	}{
		{
			name: "between markers",
			doc:  "# B\n\nintro\n<!-- bench:lock -->\nold\n<!-- /bench:lock -->\nafter\n",
			want: "# B\n\nintro\n<!-- bench:lock -->\nNEW\n<!-- /bench:lock -->\nafter\n",
		},
		{
			name: "empty section",
			doc:  "<!-- bench:lock -->\n<!-- /bench:lock -->\n",
			want: "<!-- bench:lock -->\nNEW\n<!-- /bench:lock -->\n",
		},
		{
			name: "no markers: appended",
			doc:  "# B\n",
			want: "# B\n\n## lock vs peers\n\n<!-- bench:lock -->\nNEW\n<!-- /bench:lock -->\n",
		},
		{
			name: "other suite's markers left alone",
			doc:  "<!-- bench:locks -->\nx\n<!-- /bench:locks -->\n",
			want: "<!-- bench:locks -->\nx\n<!-- /bench:locks -->\n\n## lock vs peers\n\n<!-- bench:lock -->\nNEW\n<!-- /bench:lock -->\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(replaceSection([]byte(tc.doc), s, "NEW\n")); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSplitSuites(t *testing.T) {
	raw := strings.Join([]string{
		"machine: linux/amd64",
		"go: go1.26.8",
		"redis: 7.0.15",
		"count: 2",
		"suite: floor",
		"started: 2026-12-02T00:00:00Z",
		"load-before: 1 2 3",
		"goos: linux",
		"BenchmarkRedisFloor/op=get-2 10 100 ns/op",
		"BenchmarkRedisFloor/op=get-2 10 110 ns/op",
		"load-after: 4 5 6",
		"suite: lock",
		"BenchmarkContended/impl=outrigger-2 10 5 ns/op",
		"",
	}, "\n")
	secs, err := splitSuites([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(secs) != 2 {
		t.Fatalf("got %d sections, want 2", len(secs))
	}
	f := secs[0]
	if f.name != "floor" || f.meta["load-before"] != "1 2 3" || f.meta["load-after"] != "4 5 6" {
		t.Errorf("got section %q with meta %v, want floor with both loads", f.name, f.meta)
	}
	if got := strings.Count(string(f.body), "BenchmarkRedisFloor"); got != 2 {
		t.Errorf("got %d floor benchmark lines, want 2", got)
	}
	if strings.Contains(string(f.body), "BenchmarkContended") {
		t.Error("floor's body holds lock's benchmark")
	}
	if countOf(secs[1]) != "2" || !strings.HasPrefix(string(secs[1].body), "machine: ") {
		t.Errorf("got lock section count %q, body %q: want the file header", countOf(secs[1]), secs[1].body)
	}
	if _, err := splitSuites([]byte("machine: x\n")); err == nil {
		t.Error("got no error for results without a suite")
	}
}

func TestSuitesAreComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range suites {
		if seen[s.name] {
			t.Errorf("suite %q defined twice", s.name)
		}
		seen[s.name] = true
		if len(s.parts) == 0 {
			t.Errorf("suite %q has no parts", s.name)
		}
		for _, p := range s.parts {
			if p.bench == "" || p.benchtime == "" {
				t.Errorf("suite %q: part %+v needs a pattern and a benchtime", s.name, p)
			}
		}
	}
}
