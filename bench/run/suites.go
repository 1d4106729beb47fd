package main

// suite is one side-by-side comparison: a benchmark package of this module,
// the benchmarks it runs and how benchstat lays their results out.
type suite struct {
	name      string // the -suite name and the BENCHMARKS.md marker
	title     string // the section title when the section is new
	pkg       string // package directory, relative to bench/
	bench     string // the -bench pattern
	benchtime string
	col, row  string // benchstat -col and -row projections
	filter    string // benchstat -filter
	note      string // one line printed above the tables
	views     []view // tables to print; none: one benchstat call with col, row and filter
}

// view is one benchstat table of a suite's results: the benchmarks and
// units it keeps (-filter) and how it lays them out.
type view struct {
	title    string
	filter   string
	col, row string
}

// suites are run in this order. Every benchmark names its implementation
// impl=…, so "-col /impl" puts the peers side by side; benchstat compares
// every column with the first one it meets (the first implementation a
// benchmark runs), with the 95 % confidence interval of each median.
var suites = []suite{
	{
		name: "floor", title: "Redis round-trip floor", pkg: ".", bench: "BenchmarkRedisFloor", benchtime: "1s",
		note: "A bare go-redis GET: the floor under every Redis-backed figure below.",
	},
	{
		name: "lock", title: "lock vs bsm/redislock and go-redsync/redsync", pkg: "lock",
		bench: "BenchmarkUncontendedInterleaved|BenchmarkUncontendedParallel|BenchmarkContended", benchtime: "3000x",
		col:  "/impl",
		note: "UncontendedInterleaved runs the implementations call by call in one loop (its -µs/call metrics are the fair single-goroutine comparison); Contended is 8 goroutines on one key over 2 Lockers.",
	},
	{
		name: "ratelimit", title: "ratelimit vs go-redis/redis_rate and x/time/rate", pkg: "ratelimit",
		bench: "BenchmarkRedisAllowInterleaved|BenchmarkRedisAllow$|BenchmarkLocalAllowInterleaved", benchtime: "1s",
		col: "/impl", row: ".name /conc",
		note: "RedisAllowInterleaved alternates outrigger and redis_rate call by call (µs/call metrics); RedisAllow runs each at 1 and 64 goroutines.",
	},
	{
		name: "cache", title: "cache vs go-redis/cache", pkg: "cache",
		bench: "BenchmarkHit|BenchmarkMissLoad|BenchmarkStampede", benchtime: "1s",
		col: "/impl",
	},
	{
		name: "queue", title: "queue vs hibiken/asynq", pkg: "queue",
		bench: "BenchmarkPublishProcess$|BenchmarkPublish$|BenchmarkConsume$|BenchmarkPickupLatency", benchtime: "1s",
		col: "/impl",
	},
	{
		name: "rabbitmq", title: "queue/rabbitmq vs raw amqp091-go", pkg: "queue",
		bench: "BenchmarkRabbitPublishProcess", benchtime: "1s",
		col: "/impl",
	},
	{
		name: "compress", title: "compress vs klauspost gzhttp, CAFxX/httpcompression, NYTimes/gziphandler", pkg: "compress",
		bench: "BenchmarkGzipHeadToHead|BenchmarkMiddleware", benchtime: "0.3s",
		col: "/impl", row: ".name /size /enc /mode",
		note: "GzipHeadToHead serves the same request through compress and gzhttp alternately in one loop: its time-ratio (compress / gzhttp) is the figure to trust on a loaded machine.",
	},
	{
		name: "scheduler", title: "scheduler vs go-co-op/gocron v2 + a redislock locker", pkg: "scheduler",
		bench: "BenchmarkOverhead|BenchmarkTickToStart", benchtime: "1x",
		col: "/impl",
	},
	{
		name: "batcher", title: "queue.Batcher into PostgreSQL", pkg: "batcher",
		bench: "BenchmarkPostgresInsert", benchtime: "1x",
		col: "/mode",
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
