package lock

import (
	"strings"
	"sync"
	"testing"
)

// TestNewOwnerUnique: owner values start with the process's prefix and
// random part and never repeat, from many goroutines at once.
func TestNewOwnerUnique(t *testing.T) {
	const goroutines, each = 8, 2000
	var mu sync.Mutex
	seen := make(map[string]bool, goroutines*each)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]string, 0, each)
			for range each {
				local = append(local, newOwner())
			}
			mu.Lock()
			defer mu.Unlock()
			for _, o := range local {
				if seen[o] {
					t.Errorf("owner %q issued twice", o)
				}
				seen[o] = true
				if !strings.HasPrefix(o, ownerBase) || len(o) == len(ownerBase) {
					t.Errorf("owner %q: want %q and a sequence number", o, ownerBase)
				}
			}
		}()
	}
	wg.Wait()
	if !strings.HasPrefix(ownerBase, ownerPrefix) || len(ownerBase) != len(ownerPrefix)+17 {
		t.Errorf("ownerBase %q: want %q, 16 hex digits and '-'", ownerBase, ownerPrefix)
	}
}
