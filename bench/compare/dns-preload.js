// Loaded into Haraka with `node --require` (NODE_OPTIONS) by
// bench/compare.sh: points node's default DNS resolver at the bench's
// loopback knot server (BENCH_DNS="127.0.0.1:PORT"), the same server
// spamgate uses. Haraka's spf, dkim and dns-list plugins resolve through
// node:dns (callback and promise APIs, and `new dns.Resolver()`, which
// copies the default servers when created), so this covers all of them
// without touching /etc/resolv.conf.
'use strict'
const dns = require('node:dns')
const server = process.env.BENCH_DNS
if (server) {
  dns.setServers([server])
  dns.promises.setServers([server])
}
