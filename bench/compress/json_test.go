package compressbench

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

var (
	firstNames = []string{"Ada", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "Edsger", "Radia", "Donald", "Hedy"}
	lastNames  = []string{"Lovelace", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie", "Allen", "Dijkstra", "Perlman", "Knuth", "Lamarr"}
	cities     = []string{"Lisbon", "Osaka", "Nairobi", "Montréal", "Tallinn", "Valparaíso", "Auckland", "Reykjavík", "Kraków", "Austin"}
	words      = strings.Fields("the quick brown fox jumps over lazy dog order shipped pending refund invoice customer premium basic trial account " +
		"payment card declined approved warehouse parcel delivery express standard priority return exchange discount coupon gift " +
		"subscription monthly annual renewal cancelled active suspended verified email phone address billing shipping")
	statuses = []string{"active", "pending", "suspended", "closed"}
)

// realisticJSON returns a deterministic JSON document of at least size bytes
// shaped like a typical API list response: an envelope with paging and an
// array of user records with nested objects, timestamps, numbers, booleans
// and free text.
func realisticJSON(size int) []byte {
	r := rand.New(rand.NewPCG(42, uint64(size)))
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var b strings.Builder
	b.WriteString(`{"object":"list","has_more":true,"url":"/v1/customers","data":[`)
	for i := 0; b.Len() < size-2; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		first, last := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
		var desc []string
		for range 4 + r.IntN(8) {
			desc = append(desc, words[r.IntN(len(words))])
		}
		fmt.Fprintf(&b, `{"id":"cus_%016x","object":"customer","name":"%s %s","email":"%s.%s%d@example.com",`+
			`"created":"%s","balance":%d,"currency":"eur","delinquent":%t,"status":"%s",`+
			`"address":{"city":"%s","postal_code":"%05d","country":"%s"},"metadata":{"score":%.4f,"orders":%d},`+
			`"description":"%s","tags":["%s","%s"]}`,
			r.Uint64(), first, last, strings.ToLower(first), strings.ToLower(last), r.IntN(1000),
			base.Add(time.Duration(r.Int64N(int64(90*24*time.Hour)))).Format(time.RFC3339), r.IntN(200000)-50000,
			r.IntN(10) == 0, statuses[r.IntN(len(statuses))],
			cities[r.IntN(len(cities))], r.IntN(100000), [...]string{"PT", "JP", "KE", "CA", "EE", "CL", "NZ", "IS", "PL", "US"}[r.IntN(10)],
			r.Float64()*100, r.IntN(500),
			strings.Join(desc, " "), words[r.IntN(len(words))], words[r.IntN(len(words))])
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}
