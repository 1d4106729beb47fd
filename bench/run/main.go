// Command run runs every side-by-side benchmark of the bench module with its
// peers in -count rounds (each round one "go test -count 1" of the suite's
// benchmarks, so that every round measures all implementations under the
// same machine load, not six runs of one then six of the next), writes the raw
// results to results/<date>.txt, and regenerates the tables of
// ../BENCHMARKS.md with benchstat: per suite, each peer's figures and
// outrigger's, with 95 % confidence intervals and the difference to the
// first column. Every table is stamped with the machine, the Go and Redis
// versions and the load average before and after the suite ran.
//
// From the bench directory:
//
//	go run ./run                          # every suite, -count 6
//	go run ./run -suite lock,ratelimit    # some suites
//	go run ./run -list                    # the suites and what they run
//	go run ./run -from results/2026-12-01T20-00.txt  # tables only, from raw results
//
// A suite's section in BENCHMARKS.md lies between the lines
// "<!-- bench:NAME -->" and "<!-- /bench:NAME -->"; run replaces what is
// between them and leaves the prose around them alone. A suite whose markers
// are missing is appended at the end.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		os.Exit(1)
	}
}

type options struct {
	count     int
	suites    []string
	from      string
	doc       string
	outDir    string
	list      bool
	benchtime string // overrides every suite's, for quick checks
}

func parseFlags(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.IntVar(&o.count, "count", 6, "rounds of every benchmark (benchstat needs 6 for a confidence interval)")
	suites := fs.String("suite", "", "comma-separated suites to run (default: all; see -list)")
	fs.StringVar(&o.from, "from", "", "regenerate the tables from this raw results file instead of running")
	fs.StringVar(&o.doc, "doc", "../BENCHMARKS.md", "the document whose tables are regenerated")
	fs.StringVar(&o.outDir, "out", "results", "where the raw results go")
	fs.BoolVar(&o.list, "list", false, "list the suites and exit")
	fs.StringVar(&o.benchtime, "benchtime", "", "override every suite's -benchtime (quick checks; the tables then say so)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.count < 1 {
		return o, fmt.Errorf("-count must be >= 1, got %d", o.count)
	}
	if *suites != "" {
		for _, s := range strings.Split(*suites, ",") {
			s = strings.TrimSpace(s)
			if suiteByName(s) == nil {
				return o, fmt.Errorf("-suite: unknown suite %q (see -list)", s)
			}
			o.suites = append(o.suites, s)
		}
	}
	return o, nil
}

func run(ctx context.Context, args []string, out io.Writer) error {
	o, err := parseFlags(args, out)
	if err != nil {
		return err
	}
	if o.list {
		for _, s := range suites {
			fmt.Fprintf(out, "%-10s %s\n", s.name, s.title)
			for _, p := range s.parts {
				fmt.Fprintf(out, "           %s\n", p.command(s.pkg, p.benchtime, 1))
			}
		}
		return nil
	}
	var raw []byte
	rawPath := o.from
	if o.from != "" {
		if raw, err = os.ReadFile(o.from); err != nil {
			return err
		}
	} else {
		if raw, rawPath, err = runSuites(ctx, o, out); err != nil {
			return err
		}
	}
	sections, err := splitSuites(raw)
	if err != nil {
		return err
	}
	doc, err := os.ReadFile(o.doc)
	if err != nil {
		return err
	}
	for _, sec := range sections {
		s := suiteByName(sec.name)
		if s == nil {
			return fmt.Errorf("results name an unknown suite %q", sec.name)
		}
		table, err := benchstat(ctx, s, sec.body)
		if err != nil {
			return fmt.Errorf("suite %s: %w", s.name, err)
		}
		doc = replaceSection(doc, s, render(s, sec, table, o, rawPath))
	}
	if err := os.WriteFile(o.doc, doc, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(out, "updated %s (%d suites)\n", o.doc, len(sections))
	return nil
}

// runSuites runs the chosen suites, writing their raw output to a new file
// in o.outDir as it goes, and returns that output and the file's path.
func runSuites(ctx context.Context, o options, out io.Writer) ([]byte, string, error) {
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return nil, "", err
	}
	path := filepath.Join(o.outDir, time.Now().UTC().Format("2006-01-02T15-04")+".txt")
	f, err := os.Create(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	var all bytes.Buffer
	w := io.MultiWriter(f, &all)
	fmt.Fprintf(w, "machine: %s\ngo: %s\nredis: %s\ncount: %d\n", machine(), goVersion(ctx), redisVersion(ctx), o.count)
	for _, s := range suites {
		if len(o.suites) > 0 && !slices.Contains(o.suites, s.name) {
			continue
		}
		benchtime := o.benchtime // "" keeps each part's own
		fmt.Fprintf(out, "=== suite %s: %s\n", s.name, s.title)
		fmt.Fprintf(w, "suite: %s\nstarted: %s\nload-before: %s\n", s.name, time.Now().UTC().Format(time.RFC3339), loadAvg())
		if benchtime != "" {
			fmt.Fprintf(w, "benchtime: %s\n", benchtime)
		}
		for round := range o.count {
			fmt.Fprintf(out, "--- round %d of %d (load %s)\n", round+1, o.count, loadAvg())
			for _, p := range s.parts {
				if err := runPart(ctx, s, p, orDefault(benchtime, p.benchtime), w, out); err != nil {
					fmt.Fprintf(w, "load-after: %s\n", loadAvg())
					return nil, "", fmt.Errorf("suite %s: %w (raw results so far in %s)", s.name, err, path)
				}
			}
		}
		fmt.Fprintf(w, "load-after: %s\n", loadAvg())
	}
	fmt.Fprintf(out, "raw results: %s\n", path)
	return all.Bytes(), path, nil
}

// runPart runs one part of a suite once (-count 1), copying benchmark
// lines and their configuration to w and progress to out.
func runPart(ctx context.Context, s suite, p part, benchtime string, w, out io.Writer) error {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", p.bench,
		"-benchtime", benchtime, "-count", "1", "-timeout", "60m", pkgPath(s.pkg))
	cmd.Stderr = os.Stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	sc := bufio.NewScanner(pipe)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		// keep benchmark lines and their configuration; drop the
		// package's own "suite:"-like lines so they cannot confuse the
		// split
		if strings.HasPrefix(line, "suite:") {
			continue
		}
		fmt.Fprintln(w, line)
		if strings.HasPrefix(line, "Benchmark") || strings.HasPrefix(line, "FAIL") {
			fmt.Fprintln(out, line)
		}
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("go test -bench '%s': %w", p.bench, err)
	}
	return nil
}

// command is the go test command line of one round of p.
func (p part) command(pkg, benchtime string, count int) string {
	return fmt.Sprintf("go test -run '^$' -bench '%s' -benchtime %s -count %d %s", p.bench, benchtime, count, pkgPath(pkg))
}

// pkgPath is the go test argument for a package directory of the module.
func pkgPath(dir string) string {
	if dir == "." {
		return "."
	}
	return "./" + dir
}

// section is one suite's part of a raw results file.
type section struct {
	name   string
	header []string // the file's machine/go/redis lines
	meta   map[string]string
	body   []byte // benchmark lines, with the file's header
}

// splitSuites splits raw results at its "suite:" lines.
func splitSuites(raw []byte) ([]section, error) {
	var header []string
	var out []section
	var cur *section
	for line := range strings.Lines(string(raw)) {
		t := strings.TrimRight(line, "\n")
		key, val, isMeta := strings.Cut(t, ": ")
		if isMeta && !strings.Contains(key, " ") && !strings.HasPrefix(key, "Benchmark") {
			switch key {
			case "suite":
				out = append(out, section{name: val, header: header, meta: map[string]string{}})
				cur = &out[len(out)-1]
				cur.body = []byte(strings.Join(header, "\n") + "\n")
				continue
			case "machine", "go", "redis", "count":
				if cur == nil {
					header = append(header, t)
					continue
				}
			case "started", "load-before", "load-after", "benchtime":
				if cur != nil {
					cur.meta[key] = val
					continue
				}
			}
		}
		if cur != nil {
			cur.body = append(cur.body, line...)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no suite in the results")
	}
	return out, nil
}

// benchstat renders a suite's results with the benchstat tool pinned in
// go.mod: one table per view.
func benchstat(ctx context.Context, s *suite, body []byte) (string, error) {
	views := s.views
	if len(views) == 0 {
		views = []view{{col: "/impl"}}
	}
	var parts []string
	for _, v := range views {
		t, err := benchstatView(ctx, v, body)
		if err != nil {
			return "", err
		}
		if v.title != "" {
			t = v.title + "\n\n" + t
		}
		parts = append(parts, t)
	}
	return strings.Join(parts, "\n\n"), nil
}

func benchstatView(ctx context.Context, s view, body []byte) (string, error) {
	tmp, err := os.CreateTemp("", "bench-*.txt")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(body); err != nil {
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	args := []string{"tool", "benchstat"}
	if s.col != "" {
		args = append(args, "-col", s.col)
	}
	if s.row != "" {
		args = append(args, "-row", s.row)
	}
	if s.filter != "" {
		args = append(args, "-filter", s.filter)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "results="+tmp.Name())...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("benchstat: %w: %s", err, stderr.String())
	}
	// drop the configuration lines benchstat echoes (goos, pkg, cpu…): the
	// stamp says them once
	var keep []string
	for line := range strings.Lines(string(outb)) {
		if k, _, ok := strings.Cut(line, ": "); ok && !strings.ContainsAny(k, " │") {
			continue
		}
		keep = append(keep, strings.TrimRight(line, "\n"))
	}
	// trim blank lines only: the first line's leading spaces align the
	// column headers
	return strings.Trim(strings.Join(keep, "\n"), "\n"), nil
}

// render is a suite's generated section.
func render(s *suite, sec section, table string, o options, rawPath string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Generated by `cd bench && go run ./run -suite %s` (%s). Raw results: `%s`.\n\n", s.name, stamp(sec), docPath(rawPath))
	rounds := orDefault(countOf(sec), fmt.Sprint(o.count))
	fmt.Fprintf(&b, "%s rounds of:\n\n```sh\ncd bench\n", rounds)
	for _, p := range s.parts {
		fmt.Fprintf(&b, "%s\n", p.command(s.pkg, orDefault(sec.meta["benchtime"], p.benchtime), 1))
	}
	b.WriteString("```\n\n")
	if s.note != "" {
		fmt.Fprintf(&b, "%s\n\n", s.note)
	}
	fmt.Fprintf(&b, "```text\n%s\n```\n", table)
	return b.String()
}

// docPath is how the document names a raw results file: relative to the
// repository root when it lies in the bench module.
func docPath(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return "bench/" + filepath.ToSlash(filepath.Clean(p))
}

func stamp(sec section) string {
	var parts []string
	for _, h := range sec.header {
		if k, v, ok := strings.Cut(h, ": "); ok && k != "count" {
			parts = append(parts, k+" "+v)
		}
	}
	if v := sec.meta["started"]; v != "" {
		parts = append(parts, "run "+v)
	}
	parts = append(parts, "load average before "+orDefault(sec.meta["load-before"], "?")+", after "+orDefault(sec.meta["load-after"], "?"))
	return strings.Join(parts, "; ")
}

func countOf(sec section) string {
	for _, h := range sec.header {
		if v, ok := strings.CutPrefix(h, "count: "); ok {
			return v
		}
	}
	return ""
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// replaceSection puts text between the suite's markers in doc, or appends a
// new section with them.
func replaceSection(doc []byte, s *suite, text string) []byte {
	begin, end := "<!-- bench:"+s.name+" -->", "<!-- /bench:"+s.name+" -->"
	d := string(doc)
	i := strings.Index(d, begin)
	j := strings.Index(d, end)
	if i < 0 || j < i {
		return []byte(strings.TrimRight(d, "\n") + "\n\n## " + s.title + "\n\n" + begin + "\n" + text + end + "\n")
	}
	return []byte(d[:i+len(begin)] + "\n" + text + d[j:])
}

func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimLeft(v, " \t:"))
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %d GiB", (kb+512*1024)/(1024*1024))
		}
	}
	return fmt.Sprintf("%s/%s, %s, %d cores%s", runtime.GOOS, runtime.GOARCH, cpu, runtime.NumCPU(), mem)
}

func goVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
	if err != nil {
		return runtime.Version()
	}
	return strings.TrimSpace(string(out))
}

// redisVersion asks the Redis the benchmarks use (OUTRIGGER_REDIS_ADDR or
// 127.0.0.1:6379) for its version.
func redisVersion(ctx context.Context) string {
	addr := os.Getenv("OUTRIGGER_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	host, port, _ := strings.Cut(addr, ":")
	out, err := exec.CommandContext(ctx, "redis-cli", "-h", host, "-p", port, "INFO", "server").Output()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	for line := range strings.Lines(string(out)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v + " at " + addr
		}
	}
	return "unknown"
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
