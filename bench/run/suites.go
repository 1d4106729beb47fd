package main

// suite is one side-by-side comparison: a benchmark package of this module,
// the benchmarks it runs and how benchstat lays their results out.
type suite struct {
	name  string // the -suite name and the BENCHMARKS.md marker
	title string // the section title when the section is new
	pkg   string // package directory, relative to bench/
	parts []part // the go test runs of one round, in order
	note  string // one line printed above the tables
	views []view // tables to print; none: one benchstat call with -col /impl
}

// part is one go test run of a round: a -bench pattern and its -benchtime.
type part struct {
	bench     string
	benchtime string
}

// view is one benchstat table of a suite's results: the benchmarks and
// units it keeps (-filter) and how it lays them out (-col, -row).
type view struct {
	title    string
	filter   string
	col, row string
}

// suites are run in this order. Every benchmark names its implementation
// impl=…, so "-col /impl" puts the peers side by side; benchstat compares
// every column with the first one it meets (the first implementation a
// benchmark runs), with the 95 % confidence interval of each median.
// Views with "-row /impl" list the implementations one per row instead
// (no "vs base" column; compact when there are many peers).
var suites = []suite{
	{
		name: "floor", title: "Redis round-trip floor", pkg: ".",
		parts: []part{{"BenchmarkRedisFloor", "1s"}},
		note:  "A bare go-redis GET: the floor under every Redis-backed figure below.",
		views: []view{{filter: ".unit:(sec/op OR ops/s OR allocs/op)", row: "/op /mode"}},
	},
	{
		name: "lock", title: "lock vs bsm/redislock and go-redsync/redsync", pkg: "lock",
		parts: []part{
			{"BenchmarkUncontendedInterleaved", "5000x"},
			{"BenchmarkUncontendedParallel|BenchmarkContended", "3000x"},
		},
		note: "UncontendedInterleaved runs the three libraries call by call in one loop, so load hits them alike: its ops-ratio (outrigger ÷ redislock acquire+release pairs per second) is the single-goroutine comparison to trust. UncontendedParallel: 64 goroutines, a key each. Contended: 8 goroutines on one key over 2 Lockers, each holding it for 200 µs of CPU then sleeping 1 ms.",
		views: []view{
			{title: "One goroutine, interleaved (acquire+release pairs per second)", filter: ".name:UncontendedInterleaved .unit:(outrigger-ops/s OR redislock-ops/s OR redsync-ops/s OR ops-ratio)"},
			{title: "64 goroutines, a key each", filter: ".name:UncontendedParallel .unit:(ops/s OR round-trips/op OR allocs/op)", col: "/impl"},
			{title: "Contended", filter: ".name:Contended .unit:(sections/s OR p50-handoff-µs OR p99-handoff-µs)", row: "/impl", col: ".name"},
		},
	},
	{
		name: "ratelimit", title: "ratelimit vs go-redis/redis_rate and x/time/rate", pkg: "ratelimit",
		parts: []part{{"BenchmarkRedisAllowInterleaved|BenchmarkRedisAllow$|BenchmarkLocalAllowInterleaved", "1s"}},
		note:  "RedisAllowInterleaved runs outrigger (default, and with request IDs) and redis_rate call by call in turn, so load hits them alike: its time-ratio (outrigger ÷ redis_rate µs per call) is the comparison to trust. RedisAllow runs each implementation on its own at 1 and 64 goroutines.",
		views: []view{
			{title: "Interleaved, µs per call", filter: ".name:RedisAllowInterleaved .unit:(outrigger-µs/call OR redis_rate-µs/call OR time-ratio)", row: "/conc"},
			{title: "Each on its own: decisions per second (outrigger-rid: with request IDs; batch32: WithBatch(32))", filter: ".name:RedisAllow /impl:(outrigger OR outrigger-rid OR outrigger-batch32 OR redis_rate) .unit:(ops/s OR allocs/op)", col: "/impl", row: "/conc"},
			{title: "Local Allow vs x/time/rate in a per-key map, interleaved (ratio: outrigger ÷ x/time/rate)", filter: ".name:LocalAllowInterleaved .unit:(outrigger-sec/call OR xrate-map-sec/call OR ratio)", row: "/keys"},
		},
	},
	{
		name: "cache", title: "cache vs go-redis/cache", pkg: "cache",
		parts: []part{{"BenchmarkHit|BenchmarkMissLoad|BenchmarkStampede", "1s"}},
		note:  "MissLoadInterleaved fetches a new key through both caches in turn, call by call, so load hits them alike: its time-ratio (outrigger ÷ go-redis/cache) is the miss + load comparison to trust. Both with a local tier; outrigger also takes a cross-replica load lease (announcing the write when another replica waits for it) and guards its local store against a crossing invalidation.",
		views: []view{
			{title: "Miss + load, interleaved", filter: ".name:MissLoadInterleaved .unit:(outrigger-µs/call OR go-redis-cache-µs/call OR time-ratio)"},
			{filter: "-.name:MissLoadInterleaved .unit:(sec/op OR allocs/op)", col: "/impl"},
			{filter: ".unit:(round-trips/op OR loader-calls/op) -/tier:local", col: "/impl"},
		},
	},
	{
		name: "queue", title: "queue vs hibiken/asynq", pkg: "queue",
		parts: []part{
			{"BenchmarkPublishProcess$|BenchmarkPublish$|BenchmarkConsume$", "100000x"},
			{"BenchmarkPickupLatency", "1s"},
		},
		views: []view{
			{filter: ".name:(PublishProcess OR Publish OR Consume) .unit:(msgs/s OR client-cpu-µs/msg OR redis-cpu-µs/msg OR allocs/op)", col: "/impl"},
			{filter: ".name:PickupLatency .unit:(p50-ms OR p99-ms)", col: "/impl"},
		},
	},
	{
		name: "rabbitmq", title: "queue/rabbitmq vs raw amqp091-go", pkg: "queue",
		parts: []part{{"BenchmarkRabbitPublishProcess", "100000x"}},
		views: []view{{filter: ".unit:(msgs/s OR client-cpu-µs/msg OR broker-cpu-µs/msg)", row: "/impl /type", col: ".name"}},
	},
	{
		name: "kafka", title: "queue/kafka vs raw franz-go and segmentio/kafka-go (kfake)", pkg: "kafka",
		parts: []part{{"BenchmarkPublishProcess$|BenchmarkPublish$|BenchmarkPublishProcessSplit", "100000x"}, {"BenchmarkConsume$", "300000x"}},
		note:  "On franz-go's in-process kfake cluster (one broker, 8 partitions): 32 publishers, one message per call, acks=all; a consumer with 32 handlers. Consume drains a backlog written beforehand (the consuming side alone, group join included). PublishProcessSplit is PublishProcess with one side raw franz-go, to tell which side a gap is on. cpu-us/msg is the whole process (broker, producers, consumer).",
		views: []view{
			{filter: "-.name:PublishProcessSplit .unit:(msgs/s OR cpu-us/msg)", col: "/impl"},
			{title: "One side raw franz-go: each row names the consumer, the publisher is the other implementation", filter: ".name:PublishProcessSplit .unit:(msgs/s OR cpu-us/msg)", row: "/consume"},
		},
	},
	{
		name: "compress", title: "compress vs klauspost gzhttp, CAFxX/httpcompression, NYTimes/gziphandler", pkg: "compress",
		parts: []part{{"BenchmarkGzipHeadToHead|BenchmarkMiddleware", "0.3s"}},
		note:  "GzipHeadToHead serves the same request through compress and gzhttp alternately in one loop: its time-ratio (compress ÷ gzhttp) is the figure to trust on a loaded machine; size-ratio 1 means the same output.",
		views: []view{
			{title: "gzip head to head", filter: ".name:GzipHeadToHead .unit:(outrigger-sec/op OR gzhttp-sec/op OR time-ratio OR size-ratio)", row: "/size"},
			{title: "Every implementation, one goroutine (time per response)", filter: ".name:Middleware /mode:seq .unit:sec/op", col: "/impl", row: "/enc /size"},
			{title: "Compressed size (bytes)", filter: ".name:Middleware /mode:seq .unit:bytes-out", col: "/impl", row: "/enc /size"},
		},
	},
	{
		name: "scheduler", title: "scheduler vs go-co-op/gocron v2 + a redislock locker", pkg: "scheduler",
		parts: []part{{"BenchmarkOverhead", "20000x"}, {"BenchmarkTickToStart", "3000x"}},
		views: []view{
			{filter: ".name:Overhead .unit:(cpu-µs/run OR round-trips/run)", row: "/impl /overlap", col: ".name"},
			{filter: ".name:TickToStart .unit:(p50-ms OR p99-ms OR dup-runs/tick)", row: "/impl", col: ".name"},
		},
	},
	{
		name: "broadcast", title: "broadcast vs centrifugal/centrifuge (Redis broker)", pkg: "broadcast",
		parts: []part{
			{"BenchmarkFanOutLatency", "50x"},
			{"BenchmarkFanOutThroughput", "1000x"},
			{"BenchmarkIdleConnections", "300x"},
		},
		note: "3 replicas of each on one redis-server per benchmark; WebSocket clients in a child process. FanOutLatency: 3,000 subscribers, one message every 100 ms. FanOutThroughput: the same, published as fast as 4 goroutines can. IdleConnections: 10,000 connections on 100 channels, memory per connection, then a message every 2 ms.",
		views: []view{
			{title: "Publish → deliver latency (µs)", filter: ".name:(FanOutLatency OR IdleConnections) .unit:(p50-µs OR p99-µs)", col: "/impl"},
			{title: "Saturation", filter: ".name:FanOutThroughput .unit:(delivered/s OR published/s)", col: "/impl"},
			{title: "Idle connections", filter: ".name:IdleConnections .unit:(B/conn OR goroutines/conn)", col: "/impl"},
		},
	},
	{
		name: "batcher", title: "queue.Batcher into PostgreSQL", pkg: "batcher",
		parts: []part{{"BenchmarkPostgresInsert$", "1x"}},
		views: []view{{filter: ".unit:(rows/s OR round-trips/op)", row: "/mode", col: ".name"}},
	},
}

func suiteByName(name string) *suite {
	for i := range suites {
		if suites[i].name == name {
			return &suites[i]
		}
	}
	return nil
}
