package cache

import "encoding/json"

// Codec turns values into the bytes stored in Redis and back. The local tier
// stores values themselves and never uses the codec. Implementations must be
// safe for concurrent use.
type Codec interface {
	// Marshal returns the encoding of v (a value of the cache's type V).
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a pointer to a V. data must not be
	// retained after Unmarshal returns.
	Unmarshal(data []byte, v any) error
}

// Compressor compresses encoded values above the threshold given to
// WithCompression. The compress package's *compress.Codec satisfies it.
// Implementations must be safe for concurrent use.
type Compressor interface {
	// Encode returns the compressed form of src; it must not modify src.
	Encode(src []byte) ([]byte, error)
	// Decode returns the value that Encode compressed into src.
	Decode(src []byte) ([]byte, error)
}

// JSON is the default Codec: encoding/json.
var JSON Codec = jsonCodec{}

type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
