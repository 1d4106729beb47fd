// Package cache is a typed cache-aside with stampede protection across
// goroutines and replicas, probabilistic early refresh and two tiers (a
// bounded in-process tier over Redis).
//
// Status: planned; the API lands with its issue.
package cache
