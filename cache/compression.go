package cache

// defaultCompressor is the Compressor used when WithCompression is not
// given: none for now.
func defaultCompressor() Compressor { return nil }
