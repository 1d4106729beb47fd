// Command vulncheck reads `govulncheck -format json` from standard input and
// decides whether CI fails: a vulnerability that the code calls in a module
// we require fails the run; one in the standard library is reported with the
// Go release that fixes it, since the fix is a toolchain upgrade on the
// machine, not a change to this repository.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

type message struct {
	Finding *struct {
		OSV          string `json:"osv"`
		FixedVersion string `json:"fixed_version"`
		Trace        []struct {
			Module   string `json:"module"`
			Version  string `json:"version"`
			Package  string `json:"package"`
			Function string `json:"function"`
		} `json:"trace"`
	} `json:"finding"`
}

func main() {
	dec := json.NewDecoder(os.Stdin)
	failed := map[string]string{}
	stdlib := map[string]string{}
	for {
		var m message
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "vulncheck: bad govulncheck output:", err)
			os.Exit(2)
		}
		f := m.Finding
		if f == nil || len(f.Trace) == 0 || f.Trace[0].Function == "" {
			continue // not called by our code
		}
		t := f.Trace[0]
		line := fmt.Sprintf("%s in %s@%s (%s), fixed in %s", f.OSV, t.Module, t.Version, t.Package, f.FixedVersion)
		if t.Module == "stdlib" {
			stdlib[f.OSV] = line
		} else {
			failed[f.OSV] = line
		}
	}
	for _, l := range stdlib {
		fmt.Println("warning: standard library:", l, "- upgrade the Go toolchain")
	}
	for _, l := range failed {
		fmt.Println("FAIL: dependency:", l)
	}
	if len(failed) > 0 {
		os.Exit(1)
	}
	fmt.Printf("vulncheck: no called vulnerability in dependencies (%d in the standard library)\n", len(stdlib))
}
