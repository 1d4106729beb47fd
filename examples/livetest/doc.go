// Package livetest holds the browser tests of broadcast's client.js: a page
// using the embedded client in headless Chromium, against Hubs sharing a
// Redis, that keeps its stream whole when its server dies.
package livetest
