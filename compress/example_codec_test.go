package compress_test

import (
	"bytes"
	"fmt"

	"github.com/outrigger-dev/outrigger/compress"
)

func ExampleNewCodec() {
	codec := compress.NewCodec(compress.Zstd, 256) // values under 256 bytes stay raw
	value := bytes.Repeat([]byte(`{"user":"ada","role":"admin"},`), 100)

	stored, err := codec.Encode(value)
	if err != nil {
		panic(err)
	}
	// Any codec decodes any stored value: the header byte says how it was written.
	back, err := compress.NewCodec(compress.Gzip, 0).Decode(stored)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(value), len(stored) < len(value)/10, bytes.Equal(back, value))
	// Output: 3000 true true
}
