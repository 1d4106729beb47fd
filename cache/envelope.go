package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Envelope: the one value stored in Redis per key. Layout (big-endian):
//
//	[0]      format version (envelopeVersion)
//	[1]      flags: flagNotFound, flagCompressed, flagLease, flagWaited
//	[2:10]   soft expiry, Unix µs: the value is fresh before it
//	[10:18]  hard expiry, Unix µs: end of the stale-while-revalidate window
//	[18:22]  δ, the recompute cost of the value, µs
//	[22:30]  nonce: a random version of this write (the owner token of a lease)
//	[30:]    payload: the codec's encoding, possibly compressed
//
// scripts/*.lua read byte 1 (flags) and bytes 22..29 (nonce): keep them in
// sync with this layout.
const (
	envelopeVersion byte = 1
	headerLen       int  = 30

	flagNotFound   byte = 1
	flagCompressed byte = 2
	flagLease      byte = 4
	// flagWaited marks a lease another replica waits for (scripts/mark.lua):
	// the load's write is announced.
	flagWaited byte = 8
)

var errBadEnvelope = errors.New("cache: bad envelope")

type envelope struct {
	flags   byte
	soft    int64 // µs
	hard    int64 // µs
	delta   uint32
	nonce   uint64
	payload []byte
}

func (e *envelope) lease() bool    { return e.flags&flagLease != 0 }
func (e *envelope) notFound() bool { return e.flags&flagNotFound != 0 }

func (e *envelope) marshal() []byte {
	b := make([]byte, headerLen+len(e.payload))
	b[0] = envelopeVersion
	b[1] = e.flags
	binary.BigEndian.PutUint64(b[2:], uint64(e.soft))
	binary.BigEndian.PutUint64(b[10:], uint64(e.hard))
	binary.BigEndian.PutUint32(b[18:], e.delta)
	binary.BigEndian.PutUint64(b[22:], e.nonce)
	copy(b[headerLen:], e.payload)
	return b
}

// parseEnvelope decodes b; the payload aliases b.
func parseEnvelope(b []byte) (envelope, error) {
	if len(b) < headerLen || b[0] != envelopeVersion {
		return envelope{}, fmt.Errorf("%w: %d bytes", errBadEnvelope, len(b))
	}
	return envelope{
		flags:   b[1],
		soft:    int64(binary.BigEndian.Uint64(b[2:])),
		hard:    int64(binary.BigEndian.Uint64(b[10:])),
		delta:   binary.BigEndian.Uint32(b[18:]),
		nonce:   binary.BigEndian.Uint64(b[22:]),
		payload: b[headerLen:],
	}, nil
}

func nonceBytes(n uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return string(b[:])
}
