// A Helia IPFS node behind a small HTTP server: the IPFS peer of ferry's tests.
//
// It adds content the way `ipfs add --cid-version=1 --raw-leaves --chunker=size-N` does and
// serves it per the IPFS HTTP Trustless Gateway spec (raw blocks and CAR streams), so the
// client under test talks to a real IPFS implementation, not to a stand-in.
//
//   node gateway.mjs [--port N] [--exit-on-stdin-close]
//
// Listens on 127.0.0.1 (port 0 = a free port) and prints the port alone on one stdout line
// once it accepts connections.
//
// Endpoints:
//   POST /add?chunk=262144&rawLeaves=true[&maxChildren=174]
//                                            body = file bytes -> {"cid": "..."} (UnixFS, CIDv1,
//                                            balanced DAG; Helia's default fan-out is 1024, Kubo's 174)
//   POST /add-raw                            body = one block  -> {"cid": "..."} (raw, sha2-256)
//   GET  /ipfs/<cid>?format=raw | Accept: application/vnd.ipld.raw  -> the block
//   GET  /ipfs/<cid>?format=car | Accept: application/vnd.ipld.car  -> the DAG as a CARv1
//   POST /stall?on=true|false   hold /ipfs/ requests without answering (a hung gateway)
//   GET  /log                   the /ipfs/ requests served so far, as JSON
//   GET  /health                200 "ok"

// Helia 5's dependencies call Promise.withResolvers, which Node.js has from version 22 on.
// Node 20 is what the machines have; this is the standard definition.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve
    let reject
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

const { createServer } = await import('node:http')
const { createHeliaHTTP } = await import('@helia/http')
const { unixfs } = await import('@helia/unixfs')
const { car } = await import('@helia/car')
const { fixedSize } = await import('ipfs-unixfs-importer/chunker')
const { balanced } = await import('ipfs-unixfs-importer/layout')
const { MemoryBlockstore } = await import('blockstore-core')
const { MemoryDatastore } = await import('datastore-core')
const { CID } = await import('multiformats/cid')
const raw = await import('multiformats/codecs/raw')
const { sha256 } = await import('multiformats/hashes/sha2')

const args = process.argv.slice(2)
const portArg = args.indexOf('--port')
const port = portArg >= 0 ? Number(args[portArg + 1]) : 0

// No block brokers and no routers: this node never reaches the network; it serves only what
// the tests add to it.
const helia = await createHeliaHTTP({
  blockstore: new MemoryBlockstore(),
  datastore: new MemoryDatastore(),
  blockBrokers: [],
  routers: []
})
const fs = unixfs(helia)
const cars = car(helia)

const RAW_TYPE = 'application/vnd.ipld.raw'
const CAR_TYPE = 'application/vnd.ipld.car'
let stalled = false
const held = []
const log = []

function json (res, status, body) {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function text (res, status, body) {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' })
  res.end(body + '\n')
}

async function body (req) {
  const chunks = []
  for await (const c of req) chunks.push(c)
  return new Uint8Array(Buffer.concat(chunks))
}

// The response format a request asks for: `format` wins over `Accept`, as the spec says.
function wanted (url, req) {
  const format = url.searchParams.get('format')
  if (format === 'raw') return 'raw'
  if (format === 'car') return 'car'
  if (format !== null) return null
  const accept = req.headers.accept ?? ''
  if (accept.includes(RAW_TYPE)) return 'raw'
  if (accept.includes(CAR_TYPE)) return 'car'
  return null
}

async function serveIpfs (url, req, res) {
  const cidText = url.pathname.slice('/ipfs/'.length).replace(/\/$/, '')
  const format = wanted(url, req)
  log.push({ method: req.method, cid: cidText, format })
  if (stalled) {
    held.push(res)
    return
  }
  let cid
  try {
    cid = CID.parse(cidText)
  } catch (e) {
    return text(res, 400, `invalid CID \`${cidText}\`: ${e.message}`)
  }
  if (format === null) {
    return text(res, 406, `ask for \`${RAW_TYPE}\` or \`${CAR_TYPE}\` (Accept header or ?format=raw|car)`)
  }
  if (!(await helia.blockstore.has(cid))) {
    return text(res, 404, `\`${cid}\` is not on this node`)
  }
  const headers = {
    'x-content-type-options': 'nosniff',
    'x-ipfs-roots': cid.toString(),
    'cache-control': 'public, max-age=29030400, immutable'
  }
  if (format === 'raw') {
    const block = await helia.blockstore.get(cid, { offline: true })
    res.writeHead(200, { ...headers, 'content-type': RAW_TYPE, 'content-length': block.byteLength })
    return res.end(block)
  }
  // Helia exports breadth-first, so the order is `unk`; every block appears once.
  res.writeHead(200, { ...headers, 'content-type': `${CAR_TYPE}; version=1; order=unk; dups=n` })
  try {
    for await (const chunk of cars.stream(cid, { offline: true })) {
      if (!res.write(chunk)) await new Promise(resolve => res.once('drain', resolve))
    }
  } finally {
    res.end()
  }
}

async function handle (req, res) {
  const url = new URL(req.url, 'http://127.0.0.1')
  if (req.method === 'GET' && url.pathname === '/health') return text(res, 200, 'ok')
  if (req.method === 'GET' && url.pathname === '/log') return json(res, 200, log)
  if ((req.method === 'GET' || req.method === 'HEAD') && url.pathname.startsWith('/ipfs/')) {
    return serveIpfs(url, req, res)
  }
  if (req.method === 'POST' && url.pathname === '/add') {
    const chunkSize = Number(url.searchParams.get('chunk') ?? 262144)
    const rawLeaves = (url.searchParams.get('rawLeaves') ?? 'true') === 'true'
    const maxChildren = url.searchParams.get('maxChildren')
    const data = await body(req)
    const cid = await fs.addBytes(data, {
      cidVersion: 1,
      rawLeaves,
      chunker: fixedSize({ chunkSize }),
      ...(maxChildren === null ? {} : { layout: balanced({ maxChildrenPerNode: Number(maxChildren) }) })
    })
    return json(res, 200, { cid: cid.toString() })
  }
  if (req.method === 'POST' && url.pathname === '/add-raw') {
    const data = await body(req)
    const cid = CID.createV1(raw.code, await sha256.digest(data))
    await helia.blockstore.put(cid, data)
    return json(res, 200, { cid: cid.toString() })
  }
  if (req.method === 'POST' && url.pathname === '/stall') {
    stalled = url.searchParams.get('on') !== 'false'
    if (!stalled) {
      for (const r of held.splice(0)) text(r, 503, 'released from a stall')
    }
    return json(res, 200, { stalled })
  }
  return text(res, 404, `no route for ${req.method} ${url.pathname}`)
}

const server = createServer((req, res) => {
  handle(req, res).catch(err => {
    console.error(`gateway: ${req.method} ${req.url}: ${err.stack ?? err}`)
    if (!res.headersSent) text(res, 500, String(err.message ?? err))
    else res.destroy(err)
  })
})

function shutdown () {
  server.close()
  server.closeAllConnections?.()
  helia.stop().finally(() => process.exit(0))
}

process.on('SIGTERM', shutdown)
process.on('SIGINT', shutdown)
if (args.includes('--exit-on-stdin-close')) {
  // The test that started this process holds our stdin; when it goes away, so do we.
  process.stdin.on('end', shutdown)
  process.stdin.on('close', shutdown)
  process.stdin.resume()
}

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`)
})
