package broadcast

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"strings"
)

//go:embed client.js
var clientJS []byte

// ClientJS serves the browser client (client.js): plain JavaScript with no
// build step that defines window.OutriggerBroadcast. It speaks the WebSocket
// protocol, reconnects with exponential back-off and resumes every channel
// with since, so a page that loses its server (or reconnects to another
// replica) misses nothing:
//
//	http.Handle("/live", hub.Handler())
//	http.Handle("/live/client.js", broadcast.ClientJS)
//
//	<script src="/live/client.js"></script>
//	<script>
//	  const live = new OutriggerBroadcast("/live");
//	  live.subscribe("quotes", (data) => render(data), {onResync: () => location.reload()});
//	</script>
//
// It answers conditional requests (ETag) so browsers revalidate cheaply.
var ClientJS http.Handler = clientJSHandler{}

var clientJSTag = func() string {
	sum := sha256.Sum256(clientJS)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}()

type clientJSHandler struct{}

func (clientJSHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("ETag", clientJSTag)
	for _, t := range strings.Split(r.Header.Get("If-None-Match"), ",") {
		if strings.TrimSpace(t) == clientJSTag || strings.TrimSpace(t) == "*" {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(clientJS)
}
