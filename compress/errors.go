package compress

import "errors"

// Sentinel errors. Errors returned by this package wrap them; match with
// errors.Is.
var (
	// ErrUnknownEncoding reports an encoding this package does not support.
	ErrUnknownEncoding = errors.New("compress: unknown encoding")
	// ErrBadLevel reports a compression level out of range for its encoding.
	ErrBadLevel = errors.New("compress: bad level")
	// ErrBadOption reports an invalid option value.
	ErrBadOption = errors.New("compress: bad option")
	// ErrCorrupt reports an encoded value that cannot be decoded.
	ErrCorrupt = errors.New("compress: corrupt value")
	// ErrTooLarge reports a value whose decoded size exceeds the limit.
	ErrTooLarge = errors.New("compress: decoded size exceeds limit")
)
