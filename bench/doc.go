// Package bench holds Outrigger's side-by-side benchmarks against peer
// libraries, run on the same Redis in one `go test -bench` run. It is its own
// module so that the library never depends on its peers.
//
// Run all of them, six times, and compare runs with benchstat:
//
//	cd bench && go test -run '^$' -bench . -count 6 | tee new.txt
//	benchstat old.txt new.txt
package bench
