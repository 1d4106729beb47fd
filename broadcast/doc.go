// Package broadcast fans messages out to the subscribers of every replica
// of a service, with per-channel history and recovery, and presence.
package broadcast
