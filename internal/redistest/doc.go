// Package redistest is the real-Redis test harness used by every Redis-backed
// test in Outrigger.
//
// It finds a Redis server in this order:
//
//  1. the address in OUTRIGGER_REDIS_ADDR (host:port);
//  2. 127.0.0.1:6379, if it answers PING;
//  3. a redis-server from PATH, started on a free loopback port in a
//     temporary directory with persistence off, and stopped when the test
//     binary exits (see [Main]).
//
// When none of these works, [New] skips the test with a one-line reason, or
// fails it when the CI or OUTRIGGER_REQUIRE_REDIS environment variable is set:
// CI never skips silently.
//
// Every test gets its own key prefix ([DB.Prefix]) and the keys under it are
// deleted when the test ends, so packages can run in parallel against one
// server. The harness never flushes a server it did not start.
//
// For tests that need more than one server the harness starts extra,
// independent instances ([StartServer], [StartServers]) and a Redis Cluster
// ([StartCluster]) on loopback ports. Instances it started can be stopped,
// restarted on the same port, killed, paused (SIGSTOP) and resumed (SIGCONT) to
// test behaviour under faults. Every process it starts is stopped when its test
// ends or, at the latest, when the test binary exits.
//
// # Fault topologies
//
// [StartSentinel] starts a primary, replicas and three sentinels (monitor name
// [SentinelMasterName], quorum 2, down-after 1s) and hands out
// redis.NewFailoverClient clients ([Sentinel.Client]). Its fault helpers:
// [Sentinel.Failover] (SENTINEL FAILOVER); [Sentinel.BeginLag] then
// [Lag.FailOver], a forced-lag failover that really loses the writes the old
// primary acknowledged during the lag; [Sentinel.BeginZombie], a primary
// paused past down-after, replaced, then woken ([Zombie.Wake]) to accept
// writes until the sentinels demote it ([Zombie.WaitDemoted]);
// [WithMinReplicasToWrite] to start the nodes with min-replicas-to-write.
//
// On a [Cluster] started WithReplicas(1): [Cluster.FailoverShard] (CLUSTER
// FAILOVER), [Cluster.TakeoverShard] (kill the master, CLUSTER FAILOVER
// TAKEOVER), [Cluster.BeginShardLag] (forced lag on one shard),
// [Cluster.RejoinNode], and [Cluster.ShardTag] for keys on a given shard.
//
// [StartProxy] puts a TCP proxy in front of any node: latency, blackhole and
// connection resets without root; [Dialer] routes a Cluster or Sentinel
// client's connections to that node through it. Package internal/historytest checks the
// histories fault tests record (queues, sets, locks).
//
// [Counter] is a go-redis hook that counts commands and round trips, which
// benchmarks report as round-trips/op.
//
// Packages that use the harness call [Main] from TestMain:
//
//	func TestMain(m *testing.M) { redistest.Main(m) }
package redistest
