package queue

import (
	"cmp"
	"slices"
)

// ackEntry is a stream entry to acknowledge, its ID parsed for ordering.
type ackEntry struct {
	ms, seq uint64
	id      *string // the entry ID; a pointer: a string in an interface would cost an allocation
}

// newAckEntry parses the stream entry ID id (see parseEntryID).
func newAckEntry(id *string) ackEntry {
	e := ackEntry{id: id}
	e.ms, e.seq = parseEntryID(*id)
	return e
}

// ackArgs returns the arguments of an ack.lua call: the group, then the
// entries in ascending ID order, which the script relies on to find the
// entries its trim did not reach without parsing every ID.
func ackArgs(entries []ackEntry) []any {
	slices.SortFunc(entries, func(a, b ackEntry) int {
		if c := cmp.Compare(a.ms, b.ms); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	args := make([]any, 1, len(entries)+1)
	args[0] = groupName
	for _, e := range entries {
		args = append(args, e.id)
	}
	return args
}
