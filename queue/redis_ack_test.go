package queue

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestAckArgs: ack.lua gets the group, then the entry IDs in ascending
// order of their numbers (not of their text), which its binary search for
// the entries its trim did not reach relies on.
func TestAckArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want []string
	}{
		{"one", []string{"5-0"}, []string{"5-0"}},
		{"sorted", []string{"1-0", "1-1", "2-0"}, []string{"1-0", "1-1", "2-0"}},
		{"numeric, not text", []string{"10-2", "9-5", "10-1", "9-10"}, []string{"9-5", "9-10", "10-1", "10-2"}},
		{"descending", []string{"3-0", "2-7", "2-3", "1-9"}, []string{"1-9", "2-3", "2-7", "3-0"}},
		{"milliseconds only", []string{"7-1", "7", "6-99"}, []string{"6-99", "7", "7-1"}},
		{"not an ID first", []string{"2-0", "not-an-id"}, []string{"not-an-id", "2-0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entries := make([]ackEntry, len(tc.in))
			for i := range tc.in {
				entries[i] = newAckEntry(&tc.in[i])
			}
			args := ackArgs(entries)
			got := make([]string, 0, len(args)-1)
			for _, a := range args[1:] {
				got = append(got, *a.(*string))
			}
			assert.Equal(t, groupName, args[0])
			assert.Equal(t, tc.want, got)
		})
	}
}
