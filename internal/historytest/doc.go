// Package historytest checks histories recorded by fault tests: what clients
// tried, what they were told, and what was observed afterwards. It is pure Go
// and knows nothing of Redis, so the same checkers judge every backend.
//
// [QueueHistory] is a set/total-queue checker in the manner of Jepsen's: a
// test records each enqueue attempt with the outcome the client saw ([OK],
// [Failed] or [Unknown], see [OutcomeOf]) and each delivery, and
// [QueueHistory.Check] reports the messages lost (acknowledged, never
// delivered), duplicated (delivered more than once), unexpected (delivered,
// never attempted) and recovered (not acknowledged, delivered anyway). The
// same checker judges a set: record the adds, then "deliver" every element of
// the final read.
//
// [LockHistory] is an interval/fencing checker for locks: a test records each
// tenure ([Grant]: token, holder, start, end, and whether the fenced resource
// accepted the holder's writes), and [LockHistory.Check] reports accepted
// tenures that overlap, accepted tokens that go backwards, and tokens handed
// to two holders.
//
// Recorders are safe for concurrent use, so worker goroutines can record as
// they go; their zero values are ready to use.
package historytest
