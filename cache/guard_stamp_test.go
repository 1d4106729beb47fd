package cache

import "testing"

// TestGuard walks the guard's cases on one key: a store stamped before an
// invalidation is refused; one stamped after is allowed; this replica's
// own write stores unless another invalidation was counted between its
// stamp and its reply; a flush counts for every key.
func TestGuard(t *testing.T) {
	tests := []struct {
		name  string
		steps func(g *guard) stamp // returns the stamp the store uses
		moved bool
	}{
		{"nothing since", func(g *guard) stamp { return g.stamp("k") }, false},
		{"invalidated since", func(g *guard) stamp {
			s := g.stamp("k")
			g.invalidated("k")
			return s
		}, true},
		{"invalidated before", func(g *guard) stamp {
			g.invalidated("k")
			return g.stamp("k")
		}, false},
		{"own write alone", func(g *guard) stamp { return g.wrote(g.stamp("k")) }, false},
		{"own write, another invalidation before its reply", func(g *guard) stamp {
			s := g.stamp("k")
			g.invalidated("k")
			return g.wrote(s)
		}, true},
		{"own write, invalidated after its count", func(g *guard) stamp {
			s := g.wrote(g.stamp("k"))
			g.invalidated("k")
			return s
		}, true},
		{"read stamped before an own write", func(g *guard) stamp {
			s := g.stamp("k")
			g.wrote(g.stamp("k"))
			return s
		}, true},
		{"flush", func(g *guard) stamp {
			s := g.stamp("k")
			g.invalidatedAll()
			return s
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuard()
			if got := g.moved(tt.steps(g)); got != tt.moved {
				t.Fatalf("moved = %v, want %v", got, tt.moved)
			}
		})
	}
}
