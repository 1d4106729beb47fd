// Package scheduler runs cron and interval jobs once per tick across all
// replicas of a service.
//
// Status: planned; the API lands with its issue.
package scheduler
