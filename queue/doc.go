// Package queue is an at-least-once producer/consumer on Redis Streams with
// retries and dead letters, and a Batcher that turns a stream of items into
// bulk writes.
//
// Status: planned; the API lands with its issue.
package queue
